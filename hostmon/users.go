package hostmon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/stk-go/stk/step"
)

func init() {
	Register("users", true, func(cfg Config) (any, error) { return NewUsersCollector(cfg) })
}

// sessionKey tells login sessions apart between two readings.
func sessionKey(u host.UserStat) string {
	return u.User + "\x00" + u.Terminal + "\x00" + u.Host + "\x00" + strconv.Itoa(u.Started)
}

// usersSteps compares the sessions of this reading with the previous one:
// a user.logout for each session gone, a user.login for each new one (at
// the session's start time when known), then the system.users metric.
// The first reading (primed false) only sets the baseline: the sessions
// open when the monitor starts are not new logins.
func usersSteps(env Env, now time.Time, prev, cur []host.UserStat, primed bool) []*step.Step {
	var out []*step.Step
	if primed {
		// Counted, so that two identical sessions (same user on the same
		// seat) are matched one for one.
		had := make(map[string]int, len(prev))
		for _, u := range prev {
			had[sessionKey(u)]++
		}
		var logins []host.UserStat
		for _, u := range cur {
			k := sessionKey(u)
			if had[k] > 0 {
				had[k]--
				continue
			}
			logins = append(logins, u)
		}
		for _, u := range prev { // the sessions left unmatched are gone
			k := sessionKey(u)
			if had[k] > 0 {
				had[k]--
				out = append(out, sessionStep(env, "user.logout", "logged out", u, now))
			}
		}
		for _, u := range logins {
			at := now
			if st := time.Unix(int64(u.Started), 0); u.Started > 0 && !st.After(now) {
				at = st
			}
			out = append(out, sessionStep(env, "user.login", "logged in", u, at))
		}
	}
	set := make(map[string]bool, len(cur))
	for _, u := range cur {
		set[u.User] = true
	}
	names := slices.Sorted(maps.Keys(set))
	if names == nil {
		names = []string{} // JSON [], not null
	}
	var desc string
	switch len(cur) {
	case 0:
		desc = "no users logged in"
	case 1:
		desc = "1 user session: " + names[0]
	default:
		desc = fmt.Sprintf("%d user sessions: %s", len(cur), strings.Join(names, ", "))
	}
	s := env.NewMetric("system.users", desc, now)
	s.Set("users", len(cur))
	s.Set("names", names)
	return append(out, s)
}

func sessionStep(env Env, typ, verb string, u host.UserStat, at time.Time) *step.Step {
	desc := u.User + " " + verb
	if u.Terminal != "" {
		desc += " on " + u.Terminal
	}
	if u.Host != "" {
		desc += " from " + u.Host
	}
	s := env.NewStep(typ, desc, at)
	s.Set("user", u.User)
	s.Set("terminal", u.Terminal)
	s.Set("host", u.Host)
	return s
}

// parseLogindSession reads one of systemd-logind's session files
// (/run/systemd/sessions/<id>: KEY=value lines). It keeps the sessions
// utmp would list: class user, on a seat or a terminal, not closing (a
// closing session is a logout whose processes linger).
func parseLogindSession(b []byte) (host.UserStat, bool) {
	var u host.UserStat
	var class, seat, state string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "USER":
			u.User = v
		case "TTY":
			u.Terminal = v
		case "REMOTE_HOST":
			u.Host = v
		case "CLASS":
			class = v
		case "SEAT":
			seat = v
		case "STATE":
			state = v
		case "REALTIME": // microseconds since the epoch
			if us, err := strconv.ParseInt(v, 10, 64); err == nil {
				u.Started = int(us / 1e6)
			}
		}
	}
	if u.User == "" || !strings.HasPrefix(class, "user") || state == "closing" || (seat == "" && u.Terminal == "") {
		return host.UserStat{}, false
	}
	if u.Terminal == "" {
		u.Terminal = seat // graphical logins have a seat, no tty; who(1) shows the seat
	}
	return u, true
}

// readLogindSessions reads every session file in dir, in name order.
func readLogindSessions(dir string) ([]host.UserStat, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []host.UserStat
	for _, e := range ents {
		// Skip the <id>.ref FIFOs beside the files: opening one blocks.
		if !e.Type().IsRegular() || strings.Contains(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // the session ended while we listed
		}
		if u, ok := parseLogindSession(b); ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// usersCollector lists the login sessions each call, from utmp through
// gopsutil when there is a utmp file, else from systemd-logind's session
// files.
//
// gopsutil's host.Users reads <HOST_VAR>/run/utmp only. Where that file is
// missing (Debian 13 and others dropped utmp) it runs loginctl, several
// processes per call, which ignore the fixture roots; so it is only called
// when the utmp file exists, and logind's files are read directly
// otherwise. When the host's root is mounted elsewhere, <HOST_VAR>/run is
// usually an absolute symlink to /run that leads out of that root: then
// <HOST_RUN>/utmp is read by pointing HOST_VAR at HOST_RUN's parent.
type usersCollector struct {
	env Env

	mu     sync.Mutex
	prev   []host.UserStat
	primed bool
}

// NewUsersCollector returns the "users" collector: the login sessions each
// interval and user.login / user.logout events. It is unavailable on a
// host with neither a utmp file nor systemd-logind.
func NewUsersCollector(cfg Config) (Collector, error) {
	c := &usersCollector{env: cfg.Env}
	ctx := cfg.Env.Context(context.Background())
	if _, _, err := c.source(ctx); err != nil {
		// Only here: a source that goes missing later (a utmp file
		// being replaced) is an error of that interval, not the end of
		// the collector.
		return nil, fmt.Errorf("%w: %w", err, ErrUnavailable)
	}
	return c, nil
}

func (c *usersCollector) Name() string { return "users" }

// source says where the sessions are: a context under which gopsutil reads
// an existing utmp file, or (nil context) logind's session directory.
func (c *usersCollector) source(ctx context.Context) (utmpCtx context.Context, sessionsDir string, err error) {
	utmp := rootedPath(ctx, common.HostVarEnvKey, "/var", "run", "utmp")
	if _, err := os.Stat(utmp); err == nil {
		return ctx, "", nil
	}
	if run := rootedPath(ctx, common.HostRunEnvKey, "/run"); filepath.Base(run) == "run" {
		if _, err := os.Stat(filepath.Join(run, "utmp")); err == nil {
			m := common.EnvMap{}
			if old, ok := ctx.Value(common.EnvKey).(common.EnvMap); ok {
				maps.Copy(m, old)
			}
			m[common.HostVarEnvKey] = filepath.Dir(run)
			return context.WithValue(ctx, common.EnvKey, m), "", nil
		}
	}
	dir := rootedPath(ctx, common.HostRunEnvKey, "/run", "systemd", "sessions")
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return nil, dir, nil
	}
	return nil, "", fmt.Errorf("users: no %s and no %s", utmp, dir)
}

func (c *usersCollector) Collect(ctx context.Context, now time.Time) ([]*step.Step, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	uctx, dir, err := c.source(c.env.Context(ctx))
	if err != nil {
		return nil, err
	}
	var cur []host.UserStat
	if uctx != nil {
		cur, err = host.UsersWithContext(uctx)
	} else {
		cur, err = readLogindSessions(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	steps := usersSteps(c.env, now, c.prev, cur, c.primed)
	c.prev, c.primed = cur, true
	return steps, nil
}
