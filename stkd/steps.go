package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/stk-go/stk/internal/cli"
	"github.com/stk-go/stk/stepbus"
)

// startSteps starts the STEP bus: the history, the archive if c names a
// directory, the feed flow registered with the name server, and the
// follower of the publishers' directory name, over nsTLS when
// --name-server is a tls: one (clientTLS). Its numbers were checked by
// validate.
func (d *daemon) startSteps(c config, nsTLS *tls.Config, log *slog.Logger) error {
	archive, err := expandHome(c.stepsArchive)
	if err != nil {
		return fmt.Errorf("--steps-archive %q: %w", c.stepsArchive, err)
	}
	ns := c.nameServer
	if d.names != nil {
		ns = "tcp:" + d.namesTCP // register and follow on our own name server
	}
	accept, err := cli.ParseNetworks("--steps-accept", c.stepsAccept)
	if err != nil {
		return err
	}
	b, err := stepbus.New(stepbus.Config{
		History:         c.stepsHistory,
		ArchiveDir:      archive,
		ArchiveMaxBytes: c.stepsArchiveMaxBytes,
		ArchiveMaxAge:   c.stepsArchiveMaxAge,
		ArchiveKeep:     c.stepsArchiveKeep,
		NameServer:      ns,
		NameServerTLS:   nsTLS,
		FeedName:        c.stepsFeedName,
		AdvertiseHost:   c.advertise,
		Directory:       c.stepsDirectory,
		AcceptNetworks:  accept,
		Logger:          log,
	})
	if err != nil {
		return fmt.Errorf("%w (check --steps-archive, or turn the bus off with --steps=false)", err)
	}
	d.steps, d.stepsArchive = b, archive
	if c.stepsFeed != "" {
		ap, err := b.ServeFeed(c.stepsFeed)
		if err != nil {
			return fmt.Errorf("%w (use --steps-feed to pick another address, or \"\" to turn it off)", err)
		}
		d.stepsFeed = ap.String()
	}
	if ns == "" {
		log.Warn("no name server: the STEP bus follows no publisher and its feed is not registered (see --name-server)")
		return nil
	}
	return b.Follow()
}

// expandHome turns a leading "~/" into the user's home directory, since
// "--steps-archive=~/..." reaches stkd unexpanded by the shell.
func expandHome(p string) (string, error) {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok && p != "~" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, rest), nil
}
