// Package httpd is the status UI of stkd: a small web application and a
// JSON API showing the monitored services, the service groups, the names
// registered with the name server, the hosts and events of the STEP bus,
// the daemon's data flows and its statistics, updated live with
// server-sent events.
//
// Everything is served from the binary: the HTML, CSS and JavaScript are
// embedded (no CDN, no framework). The JavaScript builds the pages from the
// JSON API only, and puts every string from it into the DOM as text
// (textContent, never innerHTML), so names like "<script>" show as names.
//
// # Endpoints
//
//	GET /                      the app (also /services, /services/{uid}, /history, /groups, /names, /hosts, /daemon)
//	GET /api/v1/snapshot       current services, history and monitor counters at one event sequence number
//	GET /api/v1/services       current services
//	GET /api/v1/services/{uid} one record, current or history
//	GET /api/v1/history?limit=&cursor=&name=&group=&state=  a page of the history (default 100, at most 1000 records), newest first, filtered; "next" is the cursor of the following page
//	GET /api/v1/groups         service groups
//	GET /api/v1/names?limit=&cursor=&prefix=&q=&group=  a page of the registered names (default 100, at most 1000), by group and name, filtered; "next_cursor" is the cursor of the following page
//	GET /api/v1/flows          the daemon's data flows and their counters
//	GET /api/v1/stats          daemon, monitor, name server, flows and HTTP counters
//	GET /api/v1/events         server-sent events (see below)
//	POST /api/v1/step          publish a STEP, or an array of them, on the STEP bus (see STEPs)
//	GET /api/v1/steps?type=&host=&kind=&since=&until=&limit=  STEPs from the bus's history
//	GET /api/v1/steps/stats    the STEP bus's counters (stepbus.Stats)
//	GET /api/v1/steps/hosts    every host that published, with its newest metrics
//	GET /api/v1/steps/stream?type=&host=&kind=  STEPs live, server-sent events
//	GET /api/v1/steps/ws?type=&host=&kind=      STEPs live, WebSocket
//	GET /metrics               Prometheus text exposition format 0.0.4
//	GET /healthz               200 "ok"; 503 and a line per flow that cannot serve (a listener that cannot accept) or a STEP archive that cannot write
//	GET /login, POST /login    with Config.Token: the sign-in form, and the cookie that carries the token (see Security)
//	POST /logout               clears that cookie
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
// Beats are merged per record: the stream is written every 250 ms, and a
// record's beat still waiting in a client's queue is replaced by its next
// one, so a slow client gets fewer, fresher updates instead of a backlog.
// Creations, state changes, timeouts, destroys, displacements and
// resurrections are never merged away and keep their order (each carries
// the whole record, so it also stands for the beats before it). An event's
// id is then the latest monitor event it stands for; its data starts with
// "prev" (the id of the event before it on this stream, so a client can tell
// a gap from a merge), "merged" (how many monitor events it stands for, when
// more than one) and "intervals_ms" (the beat intervals it covers, for the
// sparkline). ?beats=all gives one event per beat instead, as before.
//
// Each client's queue is bounded: one beat per record plus ClientBuffer
// events that cannot be merged. A client that overflows it, or whose queued
// events have waited longer than WriteTimeout, is dropped: its stream ends,
// the browser reconnects and resumes with Last-Event-ID. The monitor is
// never blocked by a client.
//
// The name server has no change feed. While at least one event stream is
// open, the server checks every NamesInterval (1 s) whether the names
// changed (namesvc.Server.NamesVersion, a counter; a Names without it is
// listed and hashed) and sends a "names" hint when they did; the Names
// page then fetches the page it shows again, at most every few seconds.
// Hints keep the stream small however many names there are, and paging
// and search stay on the server.
//
// # STEPs
//
// With Config.Steps set, the server fronts the STEP bus (package stepbus).
// POST /api/v1/step takes one STEP as JSON (the step package's contract,
// at most 64 KiB) or a JSON array of at most 1000 (4 MiB in all) with
// Content-Type application/json (415 otherwise; that also keeps other
// sites' pages from posting, as they cannot send it without a CORS
// preflight, which is never granted). A STEP without an id gets one
// (step.NewID), one without time.start (or 0) gets the server's time
// now; then it is validated. Bad JSON or an invalid STEP is 400 with
// {"error": "..."} naming the field, and an array is taken whole or not
// at all. Accepted: 202 with {"id": "..."}, or {"ids": [...], "count": n}
// for an array. The bus keeps, archives and streams it, and republishes
// it on its feed flow (the name "steps").
//
// GET /api/v1/steps answers {"steps": [...], "sources": [...], "count":
// n, "truncated": bool}: the newest limit (default 100, at most 10000)
// matching STEPs, oldest first; sources[i] is where steps[i] came from
// ("tcp:IP:PORT" of the followed publisher, or "http"). type is a pattern ("system.cpu.*,*.high", see
// step.ParsePattern); host matches space.hostname (any case) or space.ip;
// kind=metric or kind=event keeps the periodic metrics ("kind": "metric"
// in space) or everything else; since and until bound time.start (since
// <= start < until), each RFC 3339 or Unix milliseconds. An unknown or
// repeated parameter, or a bad value, is 400 with the reason.
//
// /api/v1/steps/stream sends "hello" (the filter), then one "step" event
// per matching STEP (the data is the STEP's JSON), and a comment every
// Heartbeat. STEPs carry no id: a client that reconnects loads what it
// missed from /api/v1/steps?since=. Each client has a queue of
// ClientBuffer STEPs in the bus; when it overflows the server sends
// "dropped" and ends the stream.
//
// /api/v1/steps/ws speaks JSON text messages. The server sends
// {"type":"step","step":{...}} per matching STEP. The client may send
// {"type":"ping"} (answered {"type":"pong","time":ms}), {"type":
// "get_status"} (answered {"type":"status","bus":{...stats},
// "subscription":{...},"http":{...}}) and {"type":"subscribe","pattern":
// "...","host":"...","kind":"..."}, which replaces the whole filter (an
// absent field matches everything) and is answered {"type":"subscribed",
// ...the filter}. An "id" in a client message is echoed in its answer.
// Anything else is answered {"type":"error","error":"..."} and the
// connection stays. A client whose queue overflows is closed with status
// 1008 (policy violation); one that stops reading is cut after
// WriteTimeout. Browsers may connect from this server's own pages only
// (and Config.AllowedOrigins): see Security.
//
// # Security
//
// The server is meant for loopback, and guards every request before its
// handler runs (guard.go), so that a web page the user happens to visit
// cannot drive it:
//
// Host. The Host header must name this server: localhost, a loopback
// address, the address the connection reached or another address of this
// host, or a name in Config.AllowedHosts ("*": any). The port is not
// compared (an ssh tunnel may change it). Anything else is 421 Misdirected
// Request with a line naming stkd's --http-host: this defeats DNS
// rebinding, where another site's name is pointed at 127.0.0.1. A request
// without Host (HTTP/1.0) is accepted from loopback peers only.
//
// Origin. Every request that is not GET, HEAD or OPTIONS, the event
// streams and the WebSocket carry, when a browser sends them, an Origin
// that must be this server's own (its host and port those of the Host
// header; the scheme is not compared, as a TLS proxy may front the server)
// or one of Config.AllowedOrigins; otherwise 403. "null" passes only with
// Sec-Fetch-Site: same-origin (this server's own pages under its
// no-referrer policy). A request without Origin is not a browser's
// cross-site request (browsers send Origin on those) and is accepted:
// curl, scripts, stepmon. coder/websocket's own origin check is off: this
// is the one place deciding.
//
// Token. With Config.Token set, writes, the streams and the WebSocket need
// it, as "Authorization: Bearer TOKEN" (compared in constant time) or as
// the cookie TokenCookie; so do the app's pages, which send a browser
// without it to /login, and API reads and /metrics from peers other than
// loopback (from loopback too with Config.TokenForReads). /healthz, the
// assets and /login stay open. Missing or wrong: 401 with
// WWW-Authenticate. /login shows a form; posting the token (or GET
// /login?token=..., for a bookmark; the token then stays in the browser's
// history) sets TokenCookie, HttpOnly and SameSite=Strict, holding a
// digest of the token, not the token, and redirects to the page asked
// for. The page's JavaScript never sees the token; its fetches, event
// streams and WebSocket carry the cookie; other sites' requests do not.
// Changing the token ends every session.
package httpd
