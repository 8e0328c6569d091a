// Package flow carries sequences between processes: STK's data flows.
//
// A flow is one of
//
//   - TCPServer (ListenTCP): listens on gnet event loops, decodes every
//     connection's stream in the loop and fans sequences out to all its
//     connections (encoded once, batched into few writes);
//   - TCPClient (DialTCP): one connection with a writer goroutine and
//     automatic reconnect with capped exponential back-off;
//   - UDPFlow (NewUDP): one UDP socket that sends STK-UDP or raw datagrams to a default
//     destination or to any peer and receives them, unicast or multicast;
//   - TLSServer: STK TCP frames inside TLS (ListenTLS). gnet's event loops
//     cannot run TLS, so each connection has a reader goroutine reading
//     through crypto/tls; the framing, the bounded queue and writer, the
//     limits, timeouts and counters are TCPServer's, and its peers'
//     Protocol is TCP. A TCPClient dials TLS when Options.TLS is set.
//
// Received sequences go to the Handler in Options, called on the flow's own
// read loop without hand-off to another goroutine. The sequence and its
// element data are only valid during the call (they alias the read buffer);
// Clone what you keep. The Peer passed with it identifies the sender and can
// send a reply to it: a connection carries sequences both ways, so a server
// answers one client over its peer while Send goes to every client, and a
// client's Handler receives both (see the ListenTCP example). Over UDP the
// peer is the datagram's source.
//
// Send encodes into a queue that a writer goroutine per connection (per
// UDP socket) empties with one system call for everything queued: a busy
// sender's sequences leave in batches (over UDP as segmentation-offload
// messages where the kernel has them). A sender that finds the queue idle
// (nothing queued or being written, no push in the last few microseconds)
// sends its sequence itself with one non-blocking call instead, so that a
// lone sequence does not wait for the writer to be scheduled: the whole
// frame over TCP (what the socket does not take goes to the writer), a
// sequence of one datagram over UDP.
//
// Every outbound path is bounded by Options.QueueBytes per connection. A peer
// that does not read fast enough is handled by Options.SlowConsumer:
// disconnected (the default) or its sequences dropped; either way the flow's
// other peers keep their full rate and memory stays bounded. Close delivers
// what was already accepted, waiting at most Options.CloseTimeout.
//
// Addresses follow STK's strings, "[tcp|udp|rawudp|multicast:]ip[:port]" and
// "lookup:name" (ParseAddress). Resolving a lookup is the name service's job
// (package namesvc); this package knows nothing of it. "tls:ip:port" is
// this implementation's own: a TCP address (Protocol TCP) with Address.TLS
// set. C programs cannot speak TLS, so plain TCP stays the default.
//
// # TLS
//
// TLS is opt-in: ListenTLS serves with Options.TLS, DialTCP dials TLS when
// Options.TLS is set (an empty ServerName is the IP dialed, which the
// server's certificate must name), and ListenTCP refuses Options.TLS rather
// than serve plain TCP where TLS was asked for. NewServerTLS and
// NewClientTLS build configurations from PEM files: the certificate is
// served through a CertReloader, which looks at the files at most once a
// second and loads them again when they change, so a renewed certificate
// needs no restart (existing connections keep theirs); a server given a
// client CA file requires and verifies client certificates (mutual TLS),
// and a TLSPeer's ConnectionState shows the verified certificate. A failed
// handshake is counted in Stats.HandshakeErrors on the server and, on a
// client, logged as a warning, retried with back-off and returned by
// DialError. Under TLS 1.3 a refused client certificate shows on the
// client as an alert after its handshake: it is handled as a failed
// handshake too.
//
// Cost, from BenchmarkTLS (1->1 over loopback, both in one run, medians of
// 3 on 2 shared cores): at 16 B a TLS flow delivers as many sequences as a
// plain one (~7.5 M/s: batches of many sequences share a record); at 1 KiB
// and 16 KiB about a quarter of the bytes (~0.4 and ~1 GB/s against ~1.6
// and ~3.5 GB/s): encryption, and one goroutine hand-off per record.
package flow
