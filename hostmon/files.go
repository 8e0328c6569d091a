package hostmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stk-go/stk/step"
)

func init() {
	Register("files", true, func(cfg Config) (any, error) { return NewFilesWatcher(cfg) })
}

// Defaults of the files watcher.
const (
	// FilesCoalesce is the window over which the writes (and attribute
	// changes) to one path become at most one STEP: the first is reported
	// at once, the rest of a burst as one STEP with their count when the
	// window ends, so a busy log file sends about one STEP a second.
	FilesCoalesce = time.Second
	// FilesMaxRate bounds the STEPs per second the watcher sends; events
	// beyond it are dropped and counted in a file.overflow STEP.
	FilesMaxRate = 100
	// FilesMaxTracked bounds the paths whose coalescing state is kept.
	FilesMaxTracked = 4096
	// FilesRetryEvery is how often a path that could not be watched (it
	// does not exist yet, or was removed) is tried again.
	FilesRetryEvery = 10 * time.Second
)

// filesOps are the operations reported, in the order of their STEPs when
// one notification carries several.
var filesOps = [...]struct {
	op       fsnotify.Op
	name     string
	coalesce bool
}{
	{fsnotify.Create, "create", false},
	{fsnotify.Write, "write", true},
	{fsnotify.Remove, "remove", false},
	{fsnotify.Rename, "rename", false},
	{fsnotify.Chmod, "chmod", true},
}

// filesWatcher reports file-system events under the configured paths.
type filesWatcher struct {
	env   Env
	log   *slog.Logger
	paths []string

	// Tunables (tests shorten them).
	coalesce   time.Duration
	maxRate    int
	maxTracked int
	retryEvery time.Duration
	now        func() time.Time
	// watching, when set, is called with each configured path once its
	// watch is in place (again, after a removal): the ready signal tests
	// wait on before they touch the path.
	watching func(path string)
}

// NewFilesWatcher returns the "files" watcher: file.create, file.write,
// file.remove, file.rename and file.chmod STEPs (with path, op and the
// watched path they fall under) for Config.Paths, with inotify through
// fsnotify. A directory is watched with its entries, not recursively.
// Without paths the watcher is unavailable.
func NewFilesWatcher(cfg Config) (Watcher, error) {
	if len(cfg.Paths) == 0 {
		return nil, fmt.Errorf("files: no paths to watch configured: %w", ErrUnavailable)
	}
	w := &filesWatcher{
		env:        cfg.Env,
		log:        cfg.Logger,
		coalesce:   FilesCoalesce,
		maxRate:    FilesMaxRate,
		maxTracked: FilesMaxTracked,
		retryEvery: FilesRetryEvery,
		now:        time.Now,
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for _, p := range cfg.Paths {
		if p == "" {
			return nil, errors.New("files: an empty path in the paths to watch")
		}
		p = filepath.Clean(p)
		if !seen[p] {
			seen[p] = true
			w.paths = append(w.paths, p)
		}
	}
	return w, nil
}

func (w *filesWatcher) Name() string { return "files" }

// filesKey is one coalesced stream: a path and an operation.
type filesKey struct {
	path string
	op   int // index in filesOps
}

// filesState is a coalesced stream's state.
type filesState struct {
	sent        time.Time // when its last STEP went out
	count       int       // notifications held back since
	first, last time.Time // of those held back
}

// filesRun is the state of one Watch call.
type filesRun struct {
	w       *filesWatcher
	emit    func(*step.Step)
	fsw     *fsnotify.Watcher
	roots   map[string]bool // the configured paths
	missing map[string]bool // configured paths not watched now
	logged  map[string]bool // missing paths already logged
	tracked map[filesKey]*filesState

	tokens       int       // STEPs left in this second
	refill       time.Time // when tokens were last refilled
	dropped      int       // events dropped since the last file.overflow
	overflow     bool      // the kernel's queue overflowed since then
	lastOverflow time.Time
	lastRetry    time.Time
}

// Watch watches the paths until ctx ends. A path that cannot be watched
// is logged and tried again every FilesRetryEvery; so is one that is
// removed or renamed away.
func (w *filesWatcher) Watch(ctx context.Context, emit func(*step.Step)) error {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("files: %w", err)
	}
	defer fsw.Close()
	r := &filesRun{
		w: w, emit: emit, fsw: fsw,
		roots:   map[string]bool{},
		missing: map[string]bool{},
		logged:  map[string]bool{},
		tracked: map[filesKey]*filesState{},
		tokens:  w.maxRate,
		refill:  w.now(),
	}
	for _, p := range w.paths {
		r.roots[p] = true
		r.missing[p] = true
	}
	r.retry(w.now())
	tick := time.NewTicker(min(w.coalesce/4, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.flush(w.now(), true)
			return nil
		case ev, ok := <-fsw.Events:
			if !ok {
				return errors.New("files: event channel closed")
			}
			r.event(ev, w.now())
		case err, ok := <-fsw.Errors:
			if !ok {
				return errors.New("files: error channel closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				r.overflow = true
			} else {
				w.log.Warn("files: watch error", "err", err)
			}
		case <-tick.C:
			now := w.now()
			r.flush(now, false)
			if now.Sub(r.lastRetry) >= w.retryEvery {
				r.retry(now)
			}
		}
	}
}

// retry adds the configured paths that are not watched.
func (r *filesRun) retry(now time.Time) {
	r.lastRetry = now
	for p := range r.missing {
		err := r.fsw.Add(p)
		if err == nil {
			delete(r.missing, p)
			if r.w.watching != nil {
				r.w.watching(p)
			}
			if r.logged[p] {
				delete(r.logged, p)
				r.w.log.Info("files: watching again", "path", p)
			}
			continue
		}
		if !r.logged[p] {
			r.logged[p] = true
			r.w.log.Warn("files: cannot watch, will retry", "path", p, "err", err, "retry_every", r.w.retryEvery)
		}
	}
}

// event handles one notification: one STEP per operation it carries,
// coalesced and rate-limited.
func (r *filesRun) event(ev fsnotify.Event, now time.Time) {
	path := filepath.Clean(ev.Name)
	for i, o := range filesOps {
		if !ev.Has(o.op) {
			continue
		}
		if (o.op == fsnotify.Remove || o.op == fsnotify.Rename) && r.roots[path] {
			// inotify dropped the watch with the path: watch it again
			// when it is back.
			r.fsw.Remove(path)
			r.missing[path] = true
		}
		if !o.coalesce {
			r.send(r.step(path, i, 0, now, now))
			continue
		}
		k := filesKey{path, i}
		st := r.tracked[k]
		if st != nil && now.Sub(st.sent) < r.w.coalesce {
			if st.count == 0 {
				st.first = now
			}
			st.count++
			st.last = now
			continue
		}
		if st == nil {
			if len(r.tracked) >= r.w.maxTracked {
				r.sweep(now)
			}
			if len(r.tracked) >= r.w.maxTracked {
				r.dropped++ // too many busy paths at once
				continue
			}
			st = &filesState{}
			r.tracked[k] = st
		}
		// The window is over: send this one, with any held back that
		// flush has not sent yet.
		first, count := now, 0
		if st.count > 0 {
			first, count = st.first, st.count+1
		}
		if r.send(r.step(path, i, count, first, now)) {
			st.sent, st.count = now, 0
		}
	}
}

// send hands s on if the rate allows, and reports whether it did.
func (r *filesRun) send(s *step.Step) bool {
	r.refillTokens(r.w.now())
	if r.tokens <= 0 {
		r.dropped++
		return false
	}
	r.tokens--
	r.emit(s)
	return true
}

func (r *filesRun) refillTokens(now time.Time) {
	if now.Sub(r.refill) >= time.Second {
		r.tokens, r.refill = r.w.maxRate, now
	}
}

// flush sends the held-back notifications whose window has ended (all of
// them when final), forgets idle streams and reports drops.
func (r *filesRun) flush(now time.Time, final bool) {
	for k, st := range r.tracked {
		if now.Sub(st.sent) < r.w.coalesce && !final {
			continue
		}
		if st.count == 0 {
			delete(r.tracked, k) // idle for a window: its next write goes out at once
			continue
		}
		r.refillTokens(now)
		if r.tokens <= 0 {
			continue // held until tokens are back; nothing is lost
		}
		r.tokens--
		r.emit(r.step(k.path, k.op, st.count, st.first, st.last))
		st.sent, st.count = now, 0
	}
	if (r.dropped > 0 || r.overflow) && (final || now.Sub(r.lastOverflow) >= r.w.coalesce) {
		desc := fmt.Sprintf("file events dropped: %d over the limit of %d a second", r.dropped, r.w.maxRate)
		if r.overflow {
			desc = "file events lost: the kernel's event queue overflowed"
			if r.dropped > 0 {
				desc += fmt.Sprintf("; %d more dropped over the limit", r.dropped)
			}
		}
		s := r.w.env.NewStep("file.overflow", desc, now)
		s.Set("dropped", int64(r.dropped))
		s.Set("kernel_overflow", r.overflow)
		r.emit(s)
		r.dropped, r.overflow, r.lastOverflow = 0, false, now
	}
}

// sweep forgets the streams with nothing held back.
func (r *filesRun) sweep(now time.Time) {
	for k, st := range r.tracked {
		if st.count == 0 && now.Sub(st.sent) >= r.w.coalesce {
			delete(r.tracked, k)
		}
	}
}

// step makes the STEP of operation op on path: one notification at first
// (count 0), or count notifications held back between first and last,
// which the STEP says with "count" and its time's end.
func (r *filesRun) step(path string, op int, count int, first, last time.Time) *step.Step {
	name := filesOps[op].name
	desc := fmt.Sprintf("file %s: %s", name, path)
	if count > 0 {
		desc = fmt.Sprintf("file %s: %s (%d coalesced)", name, path, count)
	}
	s := r.w.env.NewStep("file."+name, desc, first)
	if count > 0 && last.After(first) {
		s.Time.End = last.UnixMilli()
		s.Time.Duration = s.Time.End - s.Time.Start
	}
	s.Set("path", path)
	s.Set("op", name)
	s.Set("watch", r.root(path))
	if count > 0 {
		s.Set("count", int64(count))
	}
	return s
}

// root returns the configured path an event's path falls under.
func (r *filesRun) root(path string) string {
	if r.roots[path] {
		return path
	}
	if d := filepath.Dir(path); r.roots[d] {
		return d
	}
	return path
}
