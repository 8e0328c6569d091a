package httpd

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/syncbuf"
)

// A minimal Chrome DevTools Protocol client over --remote-debugging-pipe:
// the browser reads NUL-terminated JSON commands on fd 3 and writes
// replies and events on fd 4. No WebSocket, no dependency.

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *cdpError       `json:"error,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
}

type cdpError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	toB     *os.File
	fromB   *os.File
	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpMessage
	onEvent func(cdpMessage) // called on the reader goroutine
	done    chan struct{}
	stderr  syncbuf.Buffer
}

// needBrowser skips t without Chromium or with -short; else it runs t in
// parallel with the other browser tests, after the rest of the package's
// tests (which count goroutines).
func needBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("headless browser test skipped: %s is absent (Debian package chromium; .ci/run installs it)", chromiumPath)
	}
	if testing.Short() {
		t.Skip("headless browser test skipped with -short")
	}
	t.Parallel()
}

// serveLoopback serves s on a free loopback port until the test ends and
// returns its base URL, "http://127.0.0.1:port".
func serveLoopback(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return "http://" + ln.Addr().String()
}

// browserSlots bounds the Chromiums running at once: the browser tests run
// in parallel, and six browsers starting together beside the rest of the
// suite on two cores made one of them die at start ("browser went away").
var browserSlots = make(chan struct{}, 2)

// startBrowser runs headless Chromium with the DevTools pipe. A browser
// that dies before answering its first command is started again, at most
// twice: on a loaded machine Chromium now and then exits at start (seen
// once in the full suite), which says nothing about our pages.
func startBrowser(t *testing.T, path string, onEvent func(cdpMessage)) *browser {
	t.Helper()
	browserSlots <- struct{}{}
	t.Cleanup(func() { <-browserSlots }) // runs after every b.close, registered below
	for attempt := 1; ; attempt++ {
		b := launchBrowser(t, path, onEvent)
		_, err := b.call("", "Browser.getVersion", nil)
		if err == nil || attempt == 3 {
			return b
		}
		t.Logf("Chromium went away at start (attempt %d of 3): %v", attempt, err)
		b.close()
	}
}

// launchBrowser starts one Chromium; it is closed when the test ends.
func launchBrowser(t *testing.T, path string, onEvent func(cdpMessage)) *browser {
	t.Helper()
	toBr, toBw, err := os.Pipe() // we write commands on toBw; fd 3 of the browser
	if err != nil {
		t.Fatal(err)
	}
	fromBr, fromBw, err := os.Pipe() // the browser writes on fd 4
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-quic", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-features=Translate,MediaRouter,OptimizationHints",
		"--hide-scrollbars", "--mute-audio", "--force-color-profile=srgb", "--font-render-hinting=none",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{toBr, fromBw}
	b := &browser{t: t, cmd: cmd, toB: toBw, fromB: fromBr, pending: map[int]chan cdpMessage{}, onEvent: onEvent, done: make(chan struct{})}
	cmd.Stderr = &b.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	toBr.Close()
	fromBw.Close()
	go b.read()
	t.Cleanup(b.close)
	return b
}

func (b *browser) read() {
	defer close(b.done)
	r := bufio.NewReaderSize(b.fromB, 1<<20)
	for {
		raw, err := r.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(raw[:len(raw)-1], &m); err != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		if b.onEvent != nil {
			b.onEvent(m)
		}
	}
}

// call sends a command (to a page session when session is set) and
// returns its result.
func (b *browser) call(session, method string, params any) (json.RawMessage, error) {
	if params == nil {
		params = struct{}{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	ch := make(chan cdpMessage, 1)
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	msg, _ := json.Marshal(cdpMessage{ID: id, Method: method, Params: p, SessionID: session})
	if _, err := b.toB.Write(append(msg, 0)); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: the browser went away; stderr:\n%s", method, b.stderr.String())
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-time.After(20 * time.Second):
		return nil, fmt.Errorf("%s: no reply in 20 s", method)
	}
}

func (b *browser) must(session, method string, params any) json.RawMessage {
	b.t.Helper()
	r, err := b.call(session, method, params)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

// page opens a tab and returns its session.
func (b *browser) page() string {
	b.t.Helper()
	var tgt struct {
		TargetID string `json:"targetId"`
	}
	json.Unmarshal(b.must("", "Target.createTarget", map[string]any{"url": "about:blank"}), &tgt)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	json.Unmarshal(b.must("", "Target.attachToTarget", map[string]any{"targetId": tgt.TargetID, "flatten": true}), &att)
	for _, d := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		b.must(att.SessionID, d, nil)
	}
	return att.SessionID
}

// eval evaluates a JavaScript expression in the page and decodes its
// value into out (when not nil).
func (b *browser) eval(session, expr string, out any) error {
	r, err := b.call(session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err != nil {
		return err
	}
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(r, &res); err != nil {
		return err
	}
	if e := res.ExceptionDetails; e != nil {
		return fmt.Errorf("%s: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out != nil && len(res.Result.Value) > 0 {
		return json.Unmarshal(res.Result.Value, out)
	}
	return nil
}

// waitUntil evaluates expr (a JavaScript boolean) until it is true.
func (b *browser) waitUntil(session, what, expr string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	var lastErr error
	for {
		var ok bool
		if lastErr = b.eval(session, expr, &ok); lastErr == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting %v for %s: not so (last error: %v)", d, what, lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot captures the page as PNG.
func (b *browser) screenshot(session string) []byte {
	b.t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	json.Unmarshal(b.must(session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": false}), &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	return png
}

func (b *browser) close() {
	// Ask the browser to quit (no reply awaited), kill it if it does not.
	msg, _ := json.Marshal(cdpMessage{ID: 1 << 30, Method: "Browser.close"})
	b.toB.Write(append(msg, 0))
	exited := make(chan struct{})
	go func() {
		b.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		b.cmd.Process.Kill()
		<-exited
	}
	b.toB.Close()
	<-b.done
	b.fromB.Close()
}
