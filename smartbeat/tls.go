package smartbeat

import (
	"crypto/tls"
	"net/netip"
)

// ServeTLS accepts STK TCP connections inside TLS on addr ("ip:port";
// port 0 picks one) with cfg (flow.NewServerTLS builds one from
// certificate files; with client CAs, mutual TLS: a service must show a
// certificate they issued, or its handshake fails and it sends nothing)
// and returns the bound address. Services report to it with the monitor
// address "tls:ip:port" (a Sender dials it with SenderOptions.Flow.TLS).
//
// The listener is not part of the monitor's name registration: C services
// read every monitor address string of a registration (docs/protocol.md
// §7.12) and cannot speak TLS, so a "lookup:" monitor address keeps
// leading to the plain listeners; TLS services name the address.
func (m *Monitor) ServeTLS(addr string, cfg *tls.Config) (netip.AddrPort, error) {
	f, err := m.ls.TLS(addr, cfg)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return m.addFlow(f, advNone, "tls:"+f.LocalAddr().String())
}
