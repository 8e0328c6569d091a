package httpd

import (
	"fmt"
	"math"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stk-go/stk/internal/leakcheck"
)

// promSample is one parsed sample line.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	metricNameRe = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRe  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	promTypes    = map[string]bool{"counter": true, "gauge": true, "histogram": true, "summary": true, "untyped": true}
)

// scrape parses body, a /metrics page, failing the test if it does not
// parse, and returns the value of one of its samples (sampleValue).
func scrape(t *testing.T, body string) func(name string, labels ...string) float64 {
	t.Helper()
	samples, err := parseExposition(body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	return func(name string, labels ...string) float64 {
		t.Helper()
		return sampleValue(t, samples, name, labels...)
	}
}

// sampleValue returns the value of the sample called name with exactly the
// given label pairs ("key", "value", ...), or NaN and a test error.
func sampleValue(t *testing.T, samples []promSample, name string, labels ...string) float64 {
	t.Helper()
next:
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels)/2 {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.value
	}
	t.Errorf("no sample %s%v", name, labels)
	return math.NaN()
}

// parseExposition checks text line by line against the Prometheus text
// format 0.0.4 and returns its samples. It is strict where the format is:
// one HELP and one TYPE per family, before its samples; samples of a
// family together; counters named *_total here by convention; no
// duplicate series; label values escaped.
func parseExposition(text string) ([]promSample, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("the text does not end with a newline")
	}
	var out []promSample
	typeOf := map[string]string{}
	helped := map[string]bool{}
	closed := map[string]bool{} // families whose samples are over
	seen := map[string]bool{}
	family := ""
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n := i + 1
		switch {
		case line == "":
			return nil, fmt.Errorf("line %d: empty line", n)
		case strings.HasPrefix(line, "# HELP "):
			rest := strings.TrimPrefix(line, "# HELP ")
			name, help, ok := strings.Cut(rest, " ")
			if !ok || !metricNameRe.MatchString(name) || help == "" {
				return nil, fmt.Errorf("line %d: bad HELP: %q", n, line)
			}
			if helped[name] {
				return nil, fmt.Errorf("line %d: second HELP for %s", n, name)
			}
			if err := checkEscapes(help, false); err != nil {
				return nil, fmt.Errorf("line %d: HELP: %v", n, err)
			}
			helped[name] = true
			if family != "" && family != name {
				closed[family] = true
			}
			family = name
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(strings.TrimPrefix(line, "# TYPE "))
			if len(f) != 2 || !metricNameRe.MatchString(f[0]) || !promTypes[f[1]] {
				return nil, fmt.Errorf("line %d: bad TYPE: %q", n, line)
			}
			if _, dup := typeOf[f[0]]; dup {
				return nil, fmt.Errorf("line %d: second TYPE for %s", n, f[0])
			}
			if f[0] != family {
				return nil, fmt.Errorf("line %d: TYPE %s after HELP %s", n, f[0], family)
			}
			if f[1] == "counter" && !strings.HasSuffix(f[0], "_total") {
				return nil, fmt.Errorf("line %d: counter %s does not end in _total", n, f[0])
			}
			typeOf[f[0]] = f[1]
		case strings.HasPrefix(line, "#"):
			return nil, fmt.Errorf("line %d: unexpected comment %q", n, line)
		default:
			s, key, err := parseSample(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v: %q", n, err, line)
			}
			if s.name != family || typeOf[family] == "" {
				return nil, fmt.Errorf("line %d: sample of %s outside its family (current %s)", n, s.name, family)
			}
			if closed[s.name] {
				return nil, fmt.Errorf("line %d: %s samples are not together", n, s.name)
			}
			if seen[key] {
				return nil, fmt.Errorf("line %d: duplicate series %s", n, key)
			}
			if typeOf[family] == "counter" && (s.value < 0 || math.IsNaN(s.value)) {
				return nil, fmt.Errorf("line %d: counter value %v", n, s.value)
			}
			seen[key] = true
			out = append(out, s)
		}
	}
	for name := range helped {
		if typeOf[name] == "" {
			return nil, fmt.Errorf("%s has HELP and no TYPE", name)
		}
	}
	return out, nil
}

// checkEscapes accepts only \\, \n (and \" in label values) after a
// backslash, and no raw newline.
func checkEscapes(s string, label bool) error {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			return fmt.Errorf("raw newline")
		case '\\':
			if i+1 >= len(s) {
				return fmt.Errorf("trailing backslash")
			}
			i++
			if s[i] != '\\' && s[i] != 'n' && !(label && s[i] == '"') {
				return fmt.Errorf("bad escape \\%c", s[i])
			}
		case '"':
			if label {
				return fmt.Errorf("raw quote")
			}
		}
	}
	return nil
}

func unescapeLabel(s string) string {
	return strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\"`, `"`).Replace(s)
}

// parseSample reads `name{l="v",...} value`; key identifies the series.
func parseSample(line string) (promSample, string, error) {
	s := promSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, "", fmt.Errorf("no value")
	}
	s.name = line[:i]
	if !metricNameRe.MatchString(s.name) {
		return s, "", fmt.Errorf("bad metric name")
	}
	rest := line[i:]
	var keys []string
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 {
				return s, "", fmt.Errorf("bad label")
			}
			ln := rest[:eq]
			if !labelNameRe.MatchString(ln) || strings.HasPrefix(ln, "__") {
				return s, "", fmt.Errorf("bad label name %q", ln)
			}
			rest = rest[eq+2:]
			// the value ends at the first quote not escaped
			j := 0
			for ; j < len(rest); j++ {
				if rest[j] == '\\' {
					j++
					continue
				}
				if rest[j] == '"' {
					break
				}
			}
			if j >= len(rest) {
				return s, "", fmt.Errorf("unterminated label value")
			}
			raw := rest[:j]
			if err := checkEscapes(raw, true); err != nil {
				return s, "", fmt.Errorf("label %s: %v", ln, err)
			}
			if _, dup := s.labels[ln]; dup {
				return s, "", fmt.Errorf("label %s twice", ln)
			}
			s.labels[ln] = unescapeLabel(raw)
			keys = append(keys, ln+"="+raw)
			rest = rest[j+1:]
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				return s, "", fmt.Errorf("bad label separator")
			}
		}
	}
	if !strings.HasPrefix(rest, " ") {
		return s, "", fmt.Errorf("no space before the value")
	}
	f := strings.Fields(rest)
	if len(f) != 1 { // no timestamps from us
		return s, "", fmt.Errorf("want one value")
	}
	switch f[0] {
	case "+Inf":
		s.value = math.Inf(1)
	case "-Inf":
		s.value = math.Inf(-1)
	case "NaN":
		s.value = math.NaN()
	default:
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || strings.ContainsAny(f[0], "_xX") {
			return s, "", fmt.Errorf("bad value %q", f[0])
		}
		s.value = v
	}
	return s, s.name + "{" + strings.Join(keys, ",") + "}", nil
}

func TestParseExpositionRejects(t *testing.T) {
	for _, bad := range []string{
		"x 1\n",                           // no TYPE
		"# HELP x h\n# TYPE x gauge\nx 1", // no final newline
		"# HELP x h\n# TYPE x gauge\nx{a=\"b\"c\"} 1\n",
		"# HELP x h\n# TYPE x gauge\nx{a=\"\n\"} 1\n",
		"# HELP x h\n# TYPE x counter\nx 1\n", // counter without _total
		"# HELP x h\n# TYPE x gauge\nx 1\nx 2\n",
		"# HELP x h\n# TYPE x gauge\nx one\n",
		"# HELP x h\n# TYPE x gauge\n# HELP y h\n# TYPE y gauge\ny 1\nx 1\n",
	} {
		if _, err := parseExposition(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestMetrics(t *testing.T) {
	leakcheck.Check(t)
	_, _, cfg := world(t)
	_, ts := newTest(t, cfg)
	r := get(t, ts.URL+"/metrics")
	if r.status != 200 || r.header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("/metrics: %d %q", r.status, r.header.Get("Content-Type"))
	}
	val := scrape(t, r.body)
	checks := []struct {
		got, want float64
		what      string
	}{
		{val("stk_services", "state", "running"), 1, "running services"},
		{val("stk_services", "state", "starting"), 0, "starting services"},
		{val("stk_services", "state", "timed out"), 0, "timed-out services"},
		{val("stk_services", "state", "129"), 1, "services in application state 129"},
		{val("stk_services_history"), 1, "history"},
		{val("stk_service_timeouts_total", "detector", "activity-timeout"), 1, "timeouts"},
		{val("stk_service_timeouts_total", "detector", "phi-accrual"), 0, "phi timeouts"},
		{val("stk_service_creates_total"), 3, "creates"},
		{val("stk_names_registrations"), 2, "names"},
		{val("stk_names_requests_total", "request", "register"), 7, "registers"},
		{val("stk_flow_sequences_in_total", "flow", "names-tcp", "protocol", "tcp", "addr", "127.0.0.1:20002"), 10, "flow seq in"},
		{val("stk_flow_connections", "flow", "names-tcp", "protocol", "tcp", "addr", "127.0.0.1:20002"), 2, "flow connections"},
		{val("stk_flow_dropped_total", "flow", `we"ird\name`+"\n", "protocol", "udp", "addr", ""), 1, "escaped flow label"},
		{val("stk_flow_lost_sequences_total", "flow", `we"ird\name`+"\n", "protocol", "udp", "addr", ""), 4, "udp lost sequences"},
		{val("stk_flow_lost_fragments_total", "flow", `we"ird\name`+"\n", "protocol", "udp", "addr", ""), 9, "udp lost fragments"},
		{val("stk_flow_receive_drops_total", "flow", `we"ird\name`+"\n", "protocol", "udp", "addr", ""), 2, "udp receive drops"},
		{val("stk_build_info", "version", "v0.test", "go_version", runtimeVersion()), 1, "build info"},
		{val("stk_http_event_streams"), 0, "event streams"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if !strings.Contains(r.body, `flow="we\"ird\\name\n"`) {
		t.Errorf("label not escaped as the format wants")
	}
	if g := val("stk_daemon_goroutines"); g < 1 {
		t.Errorf("goroutines %v", g)
	}
}

func runtimeVersion() string { return runtime.Version() }

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 3659920: "3659920", 1.5: "1.5", -2: "-2", 1795321364.2912836: "1795321364.2912836",
		1e20: "1e+20", 0.00001: "1e-05", math.Inf(1): "+Inf", math.Inf(-1): "-Inf",
	} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
	if got := formatValue(math.NaN()); got != "NaN" {
		t.Errorf("NaN: %q", got)
	}
}
