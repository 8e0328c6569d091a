// Package stepbus is the STEP bus of stkd: it takes STEP events (package
// step) from host monitors and other publishers, keeps a bounded history
// in memory, archives every event to disk, answers queries, and streams
// events live to subscribers and to a feed flow.
//
// # In
//
// Publish takes one STEP from any source: the HTTP API, or a publisher the
// follower found. Follow subscribes to the name-service directory name
// ("step" by default): every host monitor registers its STEP feed under
// that name, so one subscription finds them all. The bus connects to each
// registered TCP address with a reconnecting client flow and publishes
// every STEP sequence it receives (step.Decode). A publisher whose
// connection stays down for Config.PublisherGrace and which is no longer
// registered is dropped. With Config.AcceptNetworks the bus follows only
// publishers whose registered address is inside those networks. Every
// accepted STEP keeps the source it came from ("tcp:IP:PORT" of its
// publisher's registered address, or "http"): Stats.BySource counts them
// and QueryWithSources returns it beside each STEP (the STEP itself, and
// its JSON, are unchanged).
//
// # Out
//
//   - History: the newest Config.History events, shared between hosts so
//     that one flooding host cannot push the others' events out (see ring
//     in history.go), queried by type pattern, host and time (Query);
//     Hosts summarises each host and its latest metrics.
//   - Subscriptions: Subscribe delivers matching events on a bounded
//     channel. A subscriber that does not keep up loses events (counted),
//     it never slows Publish down.
//   - Feed: ServeFeed republishes every accepted event as a STEP sequence
//     (step.Encode) on a TCP server flow registered in the name service as
//     Config.FeedName ("steps"), so any STK subscriber receives the whole
//     bus.
//   - Archive: every accepted event is appended as one JSON line (exactly
//     the step package's JSON) to zstd-compressed segment files in
//     Config.ArchiveDir (see the Archive section).
//
// Publish never blocks on a consumer: the archive writer and the feed each
// have their own goroutine behind a bounded queue, and what does not fit is
// dropped and counted (Stats).
//
// # Archive
//
// Segments are named by the time they were started,
// steps-20261122T053000Z.jsonl.zst (with "-N" before ".jsonl" when two
// segments start in the same second). Every Config.FlushInterval the
// writer compresses the lines gathered since the last flush into one
// complete zstd frame, appends it to the current segment and syncs it.
// Concatenated zstd frames are one valid zstd stream, so each segment is
// readable by `zstd -d` at any moment, and a kill -9 loses at most the
// events of the last flush interval (plus what still waited in the queue).
// A frame goes out in one write(2), so only a process killed inside that
// system call (or a power loss before the sync) leaves a torn frame; on
// start, the frames of the segment written last are checked and a torn
// tail is cut off. Segments rotate when
// they hold ArchiveMaxBytes of uncompressed JSON or are ArchiveMaxAge old;
// beyond ArchiveKeep rotated segments the oldest are deleted. ReadArchive
// and ReadSegment read them back.
//
// Events handed out by Query, Hosts and subscriptions are shared by every
// reader: treat them as read-only.
package stepbus
