package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/servetest"
	"github.com/stk-go/stk/internal/testprog"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
)

// TestStepmonFeedOnEveryInterface: a feed listening on 0.0.0.0 registers
// the address of the interface toward the name server (here this host's
// primary address, where the name server is reached), not 0.0.0.0 or
// 127.0.0.1, and stepmon logs it.
func TestStepmonFeedOnEveryInterface(t *testing.T) {
	ip, ok := flow.PrimaryIP()
	if !ok {
		t.Skip("this host has no IPv4 address beyond loopback: nothing but 127.0.0.1 to register")
	}
	_, ap := servetest.Names(t, namesvc.ServerConfig{}, "0.0.0.0:0")
	ns := fmt.Sprintf("tcp:%v:%d", ip, ap.Port())
	name := fmt.Sprintf("step.advertise-test-%d", os.Getpid())
	p := testprog.Start(t, filepath.Join(bin, "stepmon"), "--listen", "0.0.0.0:0", "--name-server", ns, "--name", name, "--directory", "",
		"--stkd-http", "", "--quiet", "--interval", "1s")
	m := p.WaitFor(t, `msg="stepmon running" feed=tcp:(\S+) registered_as=tcp:(\S+)`, 10*time.Second)
	listen, err := netip.ParseAddrPort(m[1])
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%v:%d", ip, listen.Port())
	if m[2] != want || listen.Addr().String() != "0.0.0.0" {
		t.Errorf("feed on %s registered as %s, want %s", m[1], m[2], want)
	}
	p.WaitFor(t, `level=INFO msg="registering the feed" component=feed names=`+name+` address=tcp:`+want, time.Second)

	c, err := namesvc.Dial(ns, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var info namesvc.Info
	testutil.WaitFor(t, 10*time.Second, name+" in the name service", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err = c.LookupOnce(ctx, name, namesvc.LookupOptions{})
		return err == nil
	})

	if len(info.Addresses) != 1 || info.Addresses[0].String() != "tcp:"+want {
		t.Errorf("%s registered at %v, want tcp:%s", name, info.Addresses, want)
	}
}
