// Package httpd is the status UI of stkd: a small web application and a
// JSON API showing the monitored services, the service groups, the names
// registered with the name server, the daemon's data flows and its
// statistics, updated live with server-sent events.
//
// Everything is served from the binary: the HTML, CSS and JavaScript are
// embedded (no CDN, no framework). The JavaScript builds the pages from the
// JSON API only, and puts every string from it into the DOM as text
// (textContent, never innerHTML), so names like "<script>" show as names.
//
// # Endpoints
//
//	GET /                      the app (also /services, /services/{uid}, /groups, /names, /daemon)
//	GET /api/v1/snapshot       current services, history and monitor counters at one event sequence number
//	GET /api/v1/services       current services
//	GET /api/v1/services/{uid} one record, current or history
//	GET /api/v1/history        history records
//	GET /api/v1/groups         service groups
//	GET /api/v1/names?q=&group=&limit=  registered names, filtered
//	GET /api/v1/flows          the daemon's data flows and their counters
//	GET /api/v1/stats          daemon, monitor, name server, flows and HTTP counters
//	GET /api/v1/events         server-sent events (see below)
//	GET /metrics               Prometheus text exposition format 0.0.4
//	GET /healthz               200 "ok"
//
// Anything else is 404 (a small HTML page, or JSON under /api/). A
// component that is not running (nil in Config) answers 503 on its API
// endpoints, and the page says so.
//
// # Live updates
//
// /api/v1/events is an event stream. Every monitor event is sent with
// "id:" set to its sequence number (smartbeat.Event.Seq) and "event:" set
// to its kind ("created", "state", "beat", "timed_out", "destroyed",
// "displaced", "resurrected"); the data is the service record after the
// change. A client that loaded /api/v1/snapshot at sequence number S opens
// /api/v1/events?since=S and misses nothing; a browser reconnecting sends
// Last-Event-ID, which wins over since, and the server replays the events
// it missed from the monitor's ring (Monitor.EventsSince). When the ring no
// longer holds them, or the daemon restarted, the server sends "reset" and
// the client loads the snapshot again; live events keep coming meanwhile.
// Other events carry no id: "hello" (first, with the server instance and
// the monitor's sequence number), "names" (the registered names changed),
// "stats" (the /api/v1/stats document, every StatsInterval) and "reset".
// A comment line is sent every Heartbeat (15 s) to keep proxies from
// closing an idle stream.
//
// Each client has a bounded queue. One that does not read fast enough is
// dropped: its stream ends, the browser reconnects and resumes with
// Last-Event-ID. The monitor is never blocked by a client.
//
// The name server has no change feed. While at least one event stream is
// open, the server lists the names every NamesInterval (1 s), hashes them
// and sends a "names" hint when the hash changed; the page then fetches
// /api/v1/names again with its search. Hints keep the stream small
// however many names there are, and the search stays on the server.
package httpd
