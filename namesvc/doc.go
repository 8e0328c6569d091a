// Package namesvc is STK's name service: a name server wire-compatible with
// the C stknamed, and a client wire-compatible with the C library's.
//
// Applications register names with the addresses of their data flows
// (publish registers where subscribers connect), look them up, and subscribe
// to them to hear about every later registration. Package flow carries the
// name-request sequences (package seq) over TCP, STK-UDP or multicast; this
// package holds the protocol (docs/protocol.md §7) on both sides.
//
// # Server
//
// NewServer makes a Server; ServeTCP, ServeUDP and ServeMulticast add
// listeners, and ServeTLS a TCP one inside TLS (see TLS below). Its protocol core, Handle and Disconnect, needs no sockets.
// It behaves as stknamed, including what C clients rely on:
//
//   - A registration (REQUEST) is stored as it came, minus its
//     NS_REQUEST_ID, and answered REQUEST [NS_REQUEST_ID, NS_NAME]. Addresses
//     ([protocol:]ip:port, at most MaxAddresses), linger, group, FT state and
//     meta-data (any other element type) come back unchanged, in order.
//   - Several connections may register one name; each registration is kept
//     and answered. The same connection registering the name again replaces
//     its registration (in place, keeping its rank).
//   - A lookup (QUERY) gets one QUERY answer per registration, in
//     registration order: the stored elements, then the querier's
//     NS_REQUEST_ID last (C clients misparse any other order, docs/differences.md B11).
//     Nothing is sent on a miss.
//   - A subscription (SUBSCRIBE) is confirmed with REQUEST [NS_REQUEST_ID,
//     NS_NAME], answered like a lookup, and then receives an answer for every
//     later registration of the name in that group. It lasts as long as its
//     connection.
//   - Groups are separate name spaces, created by the first registration
//     or subscription that names them and kept for the server's life. A
//     lookup naming a group that does not exist searches the default group
//     instead, as stknamed does (§7.4, §7.8, docs/differences.md B10). A subscription never
//     falls back: it creates its group and watches it, since stknamed pushes
//     a later registration in that group to it (capture 04).
//   - When a registrant's TCP connection closes, its registrations linger
//     for their NS_LINGER seconds and are then removed (§7.7).
//   - Every keep-alive smartbeat is echoed on the same flow with an NS_ID
//     element holding the server id, random per run (§7.9).
//
// Where stknamed has bugs, the server does better and stays compatible:
//
//   - Requests are validated (§7.14): element sizes (NS_CONNECT_IPV4
//     16, NS_REQUEST_ID 8, NS_LINGER 4, NS_FT_STATE 4, NS_ID 8), a present
//     NS_NAME, C strings within their C buffers (name MaxNameLen, group
//     MaxGroupLen, protocol MaxProtocolLen), at most MaxAddresses addresses,
//     no repeated single-valued element. stknamed aborts or overflows on
//     these (docs/differences.md B21); this server drops the request with a log line and closes
//     the connection that sent it, and every other client keeps its service.
//     A registration whose name, group or address count exceeds the C
//     limits is well formed but refused (not stored, no reply), like one
//     over the limits below.
//   - Stored state and per-client work are bounded (ServerConfig.Limits,
//     on by default): registrations and subscriptions per client, per IP
//     and in total, stored bytes, groups, meta-data bytes and addresses
//     per registration, and a linger cap (1 h). A refused request gets no
//     reply, as STK has no refusal message, is counted by kind
//     (ServerStats.Refused) and logged at most once a second per kind; a
//     TCP client refused Limits.DisconnectAfter times is disconnected.
//     Every operation is constant time per registration or subscription
//     (maps and indexed sets, no scans of a client's list).
//   - Registrations made over UDP or multicast have no connection to end
//     them; stknamed keeps them forever (docs/differences.md B9). Here they, and UDP
//     subscriptions, expire ServerConfig.UDPTTL after the last request or
//     keep-alive smartbeat from the same source address (C clients send one
//     every 500 ms, so only dead clients expire). A negative UDPTTL keeps
//     them forever, as C.
//   - The owner of a UDP registration is its source address, not the whole
//     listener, so two UDP clients registering one name do not replace each
//     other.
//   - Subscription pushes go to the subscriber; stknamed sends them to the
//     registrant's address when the subscriber uses UDP (docs/differences.md B8).
//   - A registration identical to a lingering one (the same service back
//     after a reconnect) replaces it instead of adding a duplicate answer.
//
// # Access policy
//
// Without a policy (ServerConfig.Policy nil), anyone who reaches the
// server may register any name beside the real one, replace a UDP
// registration by spoofing its source, or register "step" so that the
// STEP bus connects where they like: the C name server's behaviour, kept
// because C programs show no credentials. A Policy lets the operator
// restrict that. Its mode is the default:
//
//   - open: everything no rule denies (the default).
//   - first-owner: as open, but a name registered by one identity may not
//     be registered by another while a registration of it is stored, its
//     linger included, unless an allow rule matches the newcomer. The
//     identity is the name of the token the client showed, else the name
//     of its client certificate (mutual TLS: the subject common name,
//     else its first DNS or URI alternative name), else its source IP.
//   - default-deny: nothing that no allow rule allows.
//
// Rules allow or deny operations (register, lookup, subscribe) on names
// and groups (glob patterns: '*' any bytes, '?' one byte) to requests
// from source networks (CIDR: all a C client can show), from clients with
// a token or with a client certificate (over mutual TLS), and over
// transports (UDP and multicast can be spoofed, so a
// rule can refuse them). The first rule, in file order, that matches a
// request decides, as in a firewall; with none matching, the mode does.
// Rules are indexed by name (exact names in a map, patterns by their
// literal prefix or suffix), so a request looks at the few rules its name
// can match, not at all of them (BenchmarkLookupWithPolicy).
//
// A refused registration gets no reply, as for a limit (the client's
// request times out); a refused lookup is answered as a miss, a refused
// subscription as one to an unknown name (confirmed, no answers, and
// nothing stored, so no pushes). Each is counted by kind (the policy_*
// Refusal kinds) and logged at most once a second per kind. A new policy
// (Server.SetPolicy) applies to the requests that follow; registrations
// already stored stay.
//
// The policy file (LoadPolicy, ParsePolicy; stkd --policy) has one
// directive a line, '#' starting a comment; lists are comma-separated:
//
//	mode open|first-owner|default-deny
//	token NAME SECRET                 # a secret of 16 bytes or more
//	token NAME sha256:HEX             # or the SHA-256 of the secret (HashToken)
//	allow|deny OPS NAMES [group GROUPS] [from CIDRS] [token NAMES] [cert CERTS] [via tcp,udp,multicast]
//
// OPS is register, lookup, subscribe, a list of them, or all; NAMES is
// a list of globs ("*": every name); GROUPS a list of globs, "" or - for
// the default group; CERTS a list of client-certificate names: NAME or
// cn:NAME (the subject common name), dns:NAME or uri:URI (a subject
// alternative name), each a glob. Every condition given must hold. For
// example:
//
//	mode default-deny
//	token billing sha256:5f1c...      # the billing service's token
//	allow lookup,subscribe *          # anyone may find anything
//	allow register billing.* token billing via tcp
//	deny register billing.*           # and nobody else
//	allow register step,steps,monitor from 127.0.0.1 via tcp
//	allow register * from 10.1.0.0/16 via tcp   # C programs of one subnet
//	allow register orders.* cert orders,dns:orders-*.example.com  # mutual TLS
//
// # Tokens
//
// A Go client with ClientOptions.Token ("NAME:SECRET") sends it in an
// element of type UTToken of its keep-alive smartbeat, the first of which
// leaves on every (re)connect before any request. A C server echoes it
// to the same connection and stores nothing (§7.9). This server strips
// it from the echo, checks it (in constant time, against the SHA-256 of
// the secret), and takes the connection as that token's identity until
// it closes; an unknown token is refused (policy_token) and drops the
// identity. The token is never part of a registration, so it is neither
// stored nor answered to a lookup. Over UDP the identity is that of the
// datagram source address, set by the first keep-alive (sent before any
// request) and kept while the source sends keep-alives (UDPTTL): anyone
// who can spoof that address inherits it, so policies that matter should
// refuse UDP for the names tokens protect. Tokens travel in the clear:
// they keep out whoever cannot read the traffic, nothing more.
//
// The registrations live in a Store (MemStore by default), a small
// interface so that another backend can be plugged in without touching the
// protocol; it keeps its names in an ordered index. NamesPage lists them a
// page at a time (cursor, prefix, substring search) without copying or
// sorting the store, NamesVersion tells a status page cheaply whether
// anything changed, and Stats gives the counters.
//
// # Client
//
// Dial connects a Client over TCP or STK-UDP. Register, Lookup (with
// LookupAll and LookupOnce), Subscribe: requests are built element for
// element as the C client builds them (§7.3), so they equal captured C
// requests byte for byte except for the request id. The client sends a
// keep-alive smartbeat every 500 ms and, after a reconnect or when the
// server id in the echo changes, sends its registrations and subscriptions
// again. Callbacks run on the flow's read loop and must not block.
//
// # TLS
//
// C programs cannot speak TLS, so TLS is an extra listener beside the plain
// ones: ServeTLS(addr, cfg) serves the same protocol inside TLS
// (flow.ListenTLS; flow.NewServerTLS builds cfg from certificate files,
// reloaded when they change, with mutual TLS when given a client CA file).
// A client dials "tls:ip:port" with ClientOptions.TLS (flow.NewClientTLS:
// the CA to trust, and a client certificate for mutual TLS). Requests over
// TLS are handled exactly as over TCP (the peer's Protocol is TCP):
// registrations linger when the connection closes, Names shows transport
// TCP.
//
// Under mutual TLS the client certificate is an identity of the access
// policy beside tokens and source networks: rules with "cert" match its
// subject common name or alternative names, and in first-owner mode a
// certificate's name owns what it registered. Only a verified chain
// counts (the Peer passed to Handle is a flow.TLSPeer; its
// ConnectionState().VerifiedChains), so a listener that does not require
// client certificates gives the policy none; a certificate of another CA
// fails the handshake and sends nothing.
//
// # The end-of-answers extension
//
// STK has no end-of-answers marker: a C lookup always waits for its full
// expiration (1-2 s in the C examples), since a miss is silence. Between
// this package's client and server, lookups end right after the last
// answer instead, invisibly to C peers:
//
//   - The client appends to every QUERY and SUBSCRIBE request one element
//     of user type UTEndOfAnswers (0x9a3e0001) holding a u32 version, 2
//     (1 asks for the marker only; 2 also for removal notices, below).
//     A C server takes only NS_NAME, NS_GROUP_NAME and NS_REQUEST_ID from
//     lookups and subscriptions (docs/protocol.md §7.13: those are all it
//     stores or uses, and it checks no unknown element type), so
//     the element is ignored there. No capture shows a C server receiving
//     it: that part rests on the specification.
//   - The server, seeing that element, sends after the last answer one more
//     QUERY sequence, [NS_NAME, UTEndOfAnswers = u32 number of answers,
//     NS_REQUEST_ID]. A miss gets just this marker, at once. For a
//     subscription the marker follows the answers for the current
//     registrations (SubscribeOptions.OnSynced); pushes follow it.
//   - C clients never send the element, so they never get the marker. A
//     client talking to a C server gets no marker and ends lookups at their
//     expiration, as C does. ClientOptions.NoEndOfAnswers turns the element
//     off.
//
// # Removal notices (this implementation's)
//
// STK tells a subscriber of new registrations only; a registration that
// goes is simply no longer answered. A subscription of version 2 is also
// told when a registration it could have been answered goes (its linger
// ran out, its registrant replaced it with other elements, the cluster
// node holding it went): the server pushes the registration's answer with
// one more element after NS_REQUEST_ID, UTRemoved (0x9a3e0003) = u32 1
// (SubscribeOptions.OnRemoved). C clients and version-1 subscriptions get
// none.
//
// The server drops elements of the reserved types 0x9a3e0001..0x9a3e000f
// from registrations (and the client refuses to send them), so that no
// registrant can make its answer pass for a marker or a notice; the client
// recognizes a marker only by its shape (the end marker is exactly
// [NS_NAME, UTEndOfAnswers, NS_REQUEST_ID], a notice ends with
// [NS_REQUEST_ID, UTRemoved]).
package namesvc
