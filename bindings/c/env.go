//go:build stk_cshared

package main

/*
#include "stk_internal.h"
*/
import "C"

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// Defaults of stk_options.
const (
	defaultNameServer   = stk.DefaultNameServer
	defaultMonitor      = "tcp:127.0.0.1:20001"
	defaultRegisterWait = 5 * time.Second
)

// levelOff is above every slog level: nothing is logged.
const levelOff = slog.Level(100)

// defaultLogger serves objects made without an env (stk_subscriber_connect
// with env NULL): warnings and errors to stderr.
var defaultLogger = newLogger(C.STK_LOG_DEFAULT)

func newLogger(level C.int) *slog.Logger {
	l := slog.LevelWarn
	switch level {
	case C.STK_LOG_DEBUG:
		l = slog.LevelDebug
	case C.STK_LOG_INFO:
		l = slog.LevelInfo
	case C.STK_LOG_ERROR:
		l = slog.LevelError
	case C.STK_LOG_OFF:
		l = levelOff
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// env is an stk_env: an stk.Env (connected to the name server on first
// use, so that an env used without names never dials it), the smartbeat
// sender of its services and the objects made from it.
type env struct {
	h         uint64
	nsString  string
	monitor   string
	group     string
	token     string      // shown to the name server, "" for none
	tls       *tls.Config // for tls: name server and monitor addresses; nil: the system's roots, no certificate
	lookupExp time.Duration
	log       *slog.Logger
	sender    *smartbeat.Sender

	mu       sync.Mutex
	closed   bool
	senv     *stk.Env
	children map[uint64]object
	// pending counts closes running in the background (an object destroyed
	// from its own callback); destroy waits for them. Not a WaitGroup: one
	// may start while destroy waits, from a callback on another thread.
	pending int
	idle    sync.Cond // signalled when pending drops to 0
}

// goString copies a C string; NULL gives def.
func goString(s *C.char, def string) string {
	if s == nil {
		return def
	}
	return C.GoString(s)
}

// loadToken returns the token of the token_file option (path), or, when
// it is "", of envToken, the value of $STK_TOKEN that stk_api.c read (nil
// when unset).
func loadToken(path string, envToken *C.char) (string, error) {
	if path == "" {
		return cli.ParseToken(goString(envToken, ""), "$"+cli.TokenEnv)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token_file: %w", err)
	}
	tok, err := cli.ParseToken(string(b), "token_file "+path)
	if err == nil && tok == "" {
		err = fmt.Errorf("token_file %s is empty: want one line NAME:SECRET", path)
	}
	return tok, err
}

// loadTLS returns the TLS client configuration of the tls_ options (a
// field "" takes its environment variable, as stk_api.c read it), or nil
// when neither names a file.
func loadTLS(o *C.stk_options, envCA, envCert, envKey *C.char, log *slog.Logger) (*tls.Config, error) {
	pick := func(opt, env *C.char, field, variable string) (string, string) {
		if s := goString(opt, ""); s != "" {
			return s, field
		}
		return goString(env, ""), "$" + variable
	}
	ca, caFrom := pick(o.tls_ca_file, envCA, "tls_ca_file", cli.TLSCAEnv)
	cert, certFrom := pick(o.tls_cert_file, envCert, "tls_cert_file", cli.TLSCertEnv)
	key, keyFrom := pick(o.tls_key_file, envKey, "tls_key_file", cli.TLSKeyEnv)
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("a TLS client certificate needs both the certificate and its key: tls_cert_file ($%s) and tls_key_file ($%s), got %s %q and %s %q",
			cli.TLSCertEnv, cli.TLSKeyEnv, certFrom, cert, keyFrom, key)
	}
	cfg, err := flow.NewClientTLS(ca, cert, key, log)
	if err != nil {
		return nil, fmt.Errorf("TLS files (%s, %s, %s): %w", caFrom, certFrom, keyFrom, err)
	}
	return cfg, nil
}

// stkgo_env_create makes the env of o, a whole stk_options of this
// header (stk_api.c copies the caller's into one); envToken is $STK_TOKEN,
// envCA, envCert and envKey $STK_TLS_CA, $STK_TLS_CERT and $STK_TLS_KEY
// (nil when unset).
//
//export stkgo_env_create
func stkgo_env_create(o *C.stk_options, envToken, envCA, envCert, envKey *C.char, out *C.uint64_t) C.int {
	var opts C.stk_options
	if o != nil {
		opts = *o
	}
	if opts.log_level < C.STK_LOG_DEFAULT || opts.log_level > C.STK_LOG_OFF {
		return failf(eInval, "stk_env_create: log_level %d: want STK_LOG_DEFAULT..STK_LOG_OFF", opts.log_level)
	}
	if opts.smartbeat_period_ms < 0 || opts.lookup_expiration_ms < 0 {
		return failf(eInval, "stk_env_create: smartbeat_period_ms and lookup_expiration_ms must be >= 0")
	}
	e := &env{
		nsString:  goString(opts.name_server, ""),
		monitor:   goString(opts.monitor, defaultMonitor),
		group:     goString(opts.group, ""),
		lookupExp: time.Duration(opts.lookup_expiration_ms) * time.Millisecond,
		log:       newLogger(opts.log_level),
		children:  map[uint64]object{},
	}
	e.idle.L = &e.mu
	tok, err := loadToken(goString(opts.token_file, ""), envToken)
	if err != nil {
		return failf(eInval, "stk_env_create: %v", err)
	}
	e.token = tok
	if e.tls, err = loadTLS(&opts, envCA, envCert, envKey, e.log); err != nil {
		return failf(eInval, "stk_env_create: %v", err)
	}
	if e.nsString == "" {
		e.nsString = defaultNameServer
	}
	a, err := flow.ParseAddress(e.nsString)
	if err == nil && (a.Lookup != "" || (a.Protocol != flow.TCP && a.Protocol != flow.UDP)) {
		err = errors.New("the name server is reached over tcp or udp")
	}
	if err != nil {
		return failf(eAddr, "stk_env_create: name_server %q: %v", e.nsString, err)
	}
	if e.monitor != "" {
		if _, err := flow.ParseAddress(e.monitor); err != nil {
			return failf(eAddr, "stk_env_create: monitor %q: %v", e.monitor, err)
		}
	}
	if len(e.group) > namesvc.MaxGroupLen {
		return failf(eInval, "stk_env_create: group longer than %d bytes", namesvc.MaxGroupLen)
	}
	e.sender = smartbeat.NewSender(smartbeat.SenderOptions{
		Period: time.Duration(opts.smartbeat_period_ms) * time.Millisecond,
		Logger: e.log,
		Flow:   flow.Options{TLS: e.tls}, // for a tls: monitor only
	})
	e.h = newHandle()
	store(e.h, e)
	*out = C.uint64_t(e.h)
	return eOK
}

// whyNotConnected says why c has no connection to its name server, for
// a timeout's message: its last connection error and what to check (the
// TLS files after a refused TLS handshake), or "is stkd running?".
func whyNotConnected(c *namesvc.Client) string {
	derr := c.DialError()
	switch {
	case flow.IsHandshakeError(derr): // may be connected again, awaiting the next refusal (TLS 1.3)
		return fmt.Sprintf("last connection attempt: %v; check that tls_ca_file ($%s) holds the CA of the server's certificate, "+
			"and that tls_cert_file and tls_key_file ($%s, $%s) are a certificate the server trusts (stkd --tls-client-ca)",
			derr, cli.TLSCAEnv, cli.TLSCertEnv, cli.TLSKeyEnv)
	case c.Connected() || derr == nil:
		return "is stkd running?"
	}
	return fmt.Sprintf("last connection attempt: %v; is stkd running?", derr)
}

// stk returns the env's stk.Env, connecting it on first use.
func (e *env) stk() (*stk.Env, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errorf(eClosed, "the env is destroyed")
	}
	if e.senv == nil {
		se, err := stk.Connect(e.nsString, stk.Options{
			Group: e.group, LookupExpiration: e.lookupExp, Logger: e.log, Token: e.token, TLS: e.tls,
		})
		if err != nil {
			return nil, errorf(eNet, "%v", err)
		}
		e.senv = se
	}
	return e.senv, nil
}

// names returns the env's name-server client (stk_name_* work on it).
func (e *env) names() (*namesvc.Client, error) {
	se, err := e.stk()
	if err != nil {
		return nil, err
	}
	return se.Names(), nil
}

// adopt records a child object, or refuses it when the env is closed (the
// caller then destroys it).
func (e *env) adopt(h uint64, o object) bool {
	if e == nil {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.children[h] = o
	return true
}

// forget drops a child that was destroyed.
func (e *env) forget(h uint64) {
	if e == nil {
		return
	}
	e.mu.Lock()
	delete(e.children, h)
	e.mu.Unlock()
}

// goAsync runs f in the background, where e's destroy waits for it (an
// object without env has nobody to wait).
func (e *env) goAsync(f func()) {
	if e == nil {
		go f()
		return
	}
	e.mu.Lock()
	e.pending++
	e.mu.Unlock()
	go func() {
		f()
		e.mu.Lock()
		if e.pending--; e.pending == 0 {
			e.idle.Broadcast()
		}
		e.mu.Unlock()
	}()
}

// logger returns e's logger, or the default one for no env.
func (e *env) logger() *slog.Logger {
	if e == nil {
		return defaultLogger
	}
	return e.log
}

// destroy closes the children first (services send DESTROY, which needs
// the sender; subscriptions need the client), then the client and sender.
func (e *env) destroy() error {
	e.mu.Lock()
	e.closed = true
	children := e.children
	e.children = nil
	senv := e.senv
	e.mu.Unlock()
	var errs []error
	for h, o := range children {
		if _, ok := table.LoadAndDelete(h); ok {
			errs = append(errs, o.destroy())
		}
	}
	e.mu.Lock()
	for e.pending > 0 {
		e.idle.Wait()
	}
	e.mu.Unlock()
	if senv != nil {
		errs = append(errs, senv.Close())
	}
	errs = append(errs, e.sender.Close())
	return errors.Join(errs...)
}

//export stkgo_env_destroy
func stkgo_env_destroy(h C.uint64_t) C.int {
	if inCallback() {
		return failf(eBusy, "stk_env_destroy: not allowed from a callback")
	}
	e, ok := take[*env](h)
	if !ok {
		return failf(eHandle, "stk_env_destroy: no env %d", h)
	}
	if err := e.destroy(); err != nil {
		return fail(err)
	}
	return eOK
}

//export stkgo_env_wait_name_server
func stkgo_env_wait_name_server(h C.uint64_t, timeoutMS C.int) C.int {
	e, ok := get[*env](h)
	if !ok {
		return failf(eHandle, "stk_env_wait_name_server: no env %d", h)
	}
	se, err := e.stk()
	if err != nil {
		return fail(err)
	}
	if se.Connected() {
		return eOK // also for timeout 0, where WaitConnected could pick the expired context
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitDuration(timeoutMS, defaultRegisterWait))
	defer cancel()
	if err := se.WaitConnected(ctx); err != nil {
		return failf(eTimedOut, "no connection to the name server at %s (%s)", e.nsString, whyNotConnected(se.Names()))
	}
	return eOK
}

// waitDuration turns a timeout in ms into a duration; negative means def.
func waitDuration(ms C.int, def time.Duration) time.Duration {
	if ms < 0 {
		return def
	}
	return time.Duration(ms) * time.Millisecond
}

// envOf returns the env of handle h; h 0 gives nil when allowNil.
func envOf(h C.uint64_t, allowNil bool) (*env, C.int) {
	if h == 0 && allowNil {
		return nil, eOK
	}
	e, ok := get[*env](h)
	if !ok {
		return nil, failf(eHandle, "no env %d", h)
	}
	return e, eOK
}
