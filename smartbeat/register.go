package smartbeat

import (
	"context"
	"fmt"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// registerTimeout bounds one registration attempt; the next refresh (or
// the namesvc client, after a reconnect) tries again.
const registerTimeout = 10 * time.Second

// registration returns the monitor's registration (§7.12): its name, its
// linger, no address, and the meta-data strings 0x1000 "tcp:IP:PORT",
// 0x1001 "udp:IP:PORT", 0x1002 "udp:GROUP:PORT" of its first listener of
// each kind. ok is false before the first listener.
func (m *Monitor) registration() (info namesvc.Info, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info = namesvc.Info{Name: m.cfg.Name, Linger: m.cfg.Linger}
	for i, ut := range [3]uint64{seq.UTMonitorTCP, seq.UTMonitorUDP, seq.UTMonitorMcast} {
		if a := m.adv[i]; a != "" {
			info.Meta = append(info.Meta, seq.Element{UserType: ut, Data: cString(a)})
		}
	}
	return info, len(info.Meta) > 0
}

// registerSoon asks the registration loop to register now.
func (m *Monitor) registerSoon() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// registerLoop registers the monitor's name whenever asked and every
// RefreshInterval. Registering again on the same connection replaces the
// registration on the server, as stkhttpd's 30 s refresh does.
func (m *Monitor) registerLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
		case <-t.C:
		}
		info, ok := m.registration()
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(m.ctx, registerTimeout)
		err := m.ns.Register(ctx, info)
		cancel()
		if m.ctx.Err() != nil {
			return
		}
		if derr := m.ns.DialError(); err != nil && derr != nil && (!m.ns.Connected() || flow.IsHandshakeError(derr)) {
			// A timeout alone does not say why; a refused TLS handshake
			// (a certificate the name server does not trust) or a name
			// server that is not there does.
			err = fmt.Errorf("%w (not connected to the name server; last connection attempt: %v)", err, derr)
		}
		m.mu.Lock()
		m.stats.Registered = err == nil
		m.stats.RegistrationErr = ""
		if err != nil {
			m.stats.RegistrationErr = err.Error()
		}
		m.mu.Unlock()
		if err != nil {
			m.log.Warn("monitor name not registered", "name", m.cfg.Name, "err", err)
		} else {
			m.log.Debug("monitor name registered", "name", m.cfg.Name, "meta", len(info.Meta))
		}
	}
}
