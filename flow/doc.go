// Package flow carries sequences between processes: STK's data flows.
//
// A flow is one of
//
//   - TCPServer: listens on a gnet event loop, decodes every connection's
//     stream in the loop and fans sequences out to all its connections
//     (encoded once, batched into few writes);
//   - TCPClient: one connection with a writer goroutine and automatic
//     reconnect with capped exponential back-off;
//   - UDP: one UDP socket that sends STK-UDP or raw datagrams to a default
//     destination or to any peer and receives them, unicast or multicast.
//
// Received sequences go to the Handler in Options, called on the flow's own
// read loop without hand-off to another goroutine. The sequence and its
// element data are only valid during the call (they alias the read buffer);
// Clone what you keep. The Peer passed with it identifies the sender and can
// send a reply to it.
//
// Every outbound path is bounded by Options.QueueBytes per connection. A peer
// that does not read fast enough is handled by Options.SlowConsumer:
// disconnected (the default) or its sequences dropped; either way the flow's
// other peers keep their full rate and memory stays bounded. Close delivers
// what was already accepted, waiting at most Options.CloseTimeout.
//
// Addresses follow STK's strings, "[tcp|udp|rawudp|multicast:]ip[:port]" and
// "lookup:name" (ParseAddress). Resolving a lookup is the name service's job
// (package namesvc); this package knows nothing of it.
package flow
