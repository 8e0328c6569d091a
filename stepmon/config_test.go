package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/hostmon"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stepmon.conf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseConfig(t *testing.T) {
	lines, err := parseConfig(strings.NewReader(`# stepmon settings

interval = 5s
  collectors=cpu,memory   
directory = ""
name = "step.with = sign"
threshold = cpu=70/90
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []configLine{
		{"interval", "5s", 3}, {"collectors", "cpu,memory", 4}, {"directory", "", 5},
		{"name", "step.with = sign", 6}, {"threshold", "cpu=70/90", 7},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %v, want %v", lines, want)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, lines[i], want[i])
		}
	}

	for text, msg := range map[string]string{
		"interval = 1s\njson\n":     `line 2: "json" is not key = value`,
		"= 5\n":                     `line 1: "= 5" has no key before '='`,
		"name = \"unterminated\n":   `line 1: name: the value "unterminated is not a well-formed "quoted string"`,
		"\n\n name = \"a\"b\" \n":   `line 3: name: the value "a"b" is not`,
		"interval = 1s\n# x\nfoo\n": `line 3: "foo" is not key = value`,
	} {
		_, err := parseConfig(strings.NewReader(text))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want %q", text, err, msg)
		}
	}
}

func TestParseArgsWithConfigFile(t *testing.T) {
	path := writeFile(t, `
interval = 5s
collectors = cpu
collectors = memory
directory = ""
json = true
cooldown = 1m
threshold = cpu=70/90
threshold = memory=off
threshold = network=5M/8M
`)
	o, err := parseArgs([]string{"-c", path, "--interval", "2s", "--threshold", "cpu=60/80"}, io.Discard, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if o.interval != 2*time.Second {
		t.Errorf("interval %v: the flag must win over the file", o.interval)
	}
	if strings.Join(o.collectors, ",") != "cpu,memory" {
		t.Errorf("collectors %v, want the file's lines together", o.collectors)
	}
	if o.directory != "" || !o.json || o.cooldown != time.Minute || o.name != "step.h1" {
		t.Errorf("directory %q json %v cooldown %v name %q", o.directory, o.json, o.cooldown, o.name)
	}
	acfg, err := o.alertConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]hostmon.Rule{}
	for _, r := range acfg.Rules {
		rules[r.Name] = r
	}
	if r := rules["cpu"]; r.Warning != 60 || r.Critical != 80 {
		t.Errorf("cpu %v/%v, want the command line's 60/80 over the file's 70/90", r.Warning, r.Critical)
	}
	if _, ok := rules["memory"]; ok {
		t.Error("memory=off in the file did not drop the rule")
	}
	if r := rules["network"]; r.Warning != 5e6 || r.Critical != 8e6 {
		t.Errorf("network %v/%v, want 5e6/8e6", r.Warning, r.Critical)
	}
	if r := rules["disk"]; r.Warning != 85 || r.Critical != 95 {
		t.Errorf("disk %v/%v, want the defaults", r.Warning, r.Critical)
	}
	if acfg.Cooldown != time.Minute || acfg.Hysteresis != 0.05 {
		t.Errorf("cooldown %v hysteresis %v", acfg.Cooldown, acfg.Hysteresis)
	}

	// Every rule off: none, not the defaults.
	o, err = parseArgs([]string{"--hysteresis", "0", "--threshold", "cpu=off", "--threshold", "memory=off", "--threshold", "disk=off",
		"--threshold", "diskio=off", "--threshold", "network=off", "--threshold", "gpu=off"}, io.Discard, "h1")
	if err != nil {
		t.Fatal(err)
	}
	acfg, err = o.alertConfig(nil)
	if err != nil || acfg.Rules == nil || len(acfg.Rules) != 0 || acfg.Hysteresis >= 0 {
		t.Errorf("all off: rules %v (nil %v) hysteresis %v err %v", acfg.Rules, acfg.Rules == nil, acfg.Hysteresis, err)
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		file string // config file text, if any
		args []string
		msg  string
	}{
		{"interval = 1s\nintervall = 2s\n", nil, `stepmon.conf:2: unknown key "intervall" (keys are the long flag names: interval, collectors,`},
		{"config = other.conf\n", nil, `stepmon.conf:1: unknown key "config"`},
		{"interval = fast\n", nil, `stepmon.conf:1: interval = "fast": time: invalid duration "fast"`},
		{"json = maybe\n", nil, `stepmon.conf:1: json = "maybe": strconv.ParseBool`},
		{"interval\n", nil, `stepmon.conf: line 1: "interval" is not key = value`},
		{"", []string{"-c", "/nonexistent/stepmon.conf"}, "config file: open /nonexistent/stepmon.conf"},
		{"", []string{"--interval", "0"}, "--interval 0s: want at least 10ms"},
		{"", []string{"--cooldown", "-1s"}, "--cooldown -1s is negative"},
		{"", []string{"--hysteresis", "100"}, "--hysteresis 100: want a percent"},
		{"", []string{"--bogus"}, "unknown flag: --bogus (see stepmon -h)"},
		{"", []string{"extra"}, `unexpected argument "extra"`},
		{"", []string{"--name", strings.Repeat("n", 96)}, "at most 95 bytes"},
	} {
		args := tc.args
		if tc.file != "" {
			args = append([]string{"-c", writeFile(t, tc.file)}, args...)
		}
		_, err := parseArgs(args, io.Discard, "h1")
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q %v: error %v, want %q", tc.file, tc.args, err, tc.msg)
		}
	}
}

func TestApplyThresholds(t *testing.T) {
	rules, err := applyThresholds(hostmon.DefaultRules(), []string{"disk=90%/97%", " diskio = 1.5G/2G ", "gpu=70/85", "cpu=50/50"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]float64{}
	for _, r := range rules {
		got[r.Name] = [2]float64{r.Warning, r.Critical}
	}
	for name, want := range map[string][2]float64{"disk": {90, 97}, "diskio": {1.5e9, 2e9}, "gpu": {70, 85}, "cpu": {50, 50}, "memory": {80, 90}} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	defaults := hostmon.DefaultRules()
	if _, err := applyThresholds(defaults, []string{"cpu=off"}); err != nil || defaults[0].Name != "cpu" || len(defaults) != 6 {
		t.Errorf("off changed the caller's rules: %v %v", defaults, err)
	}
	for setting, msg := range map[string]string{
		"cpu":           `want NAME=WARN/CRIT (e.g. cpu=80/95, network=10M/20M) or NAME=off`,
		"cpu=80":        `want WARN/CRIT after cpu=, e.g. cpu=80/95`,
		"network=10":    `e.g. network=10M/20M`,
		"cpux=1/2":      `no rule "cpux" (rules: cpu, memory, disk, diskio, network, gpu)`,
		"cpu=95/80":     `critical threshold 80 is below the warning threshold 95`,
		"cpu=0/80":      `warning threshold 0 must be above 0`,
		"cpu=lots/90":   `warning: "lots" is not a number`,
		"cpu=80/NaN":    `critical: "NaN" is not a number`,
		"memory=80/9X":  `critical: "9X" is not a number`,
		"=80/90":        `want NAME=WARN/CRIT`,
		"gpu=off=soon":  `want WARN/CRIT after gpu=`,
		"disk=85/95/99": `critical: "95/99" is not a number`,
	} {
		_, err := applyThresholds(hostmon.DefaultRules(), []string{setting})
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want %q", setting, err, msg)
		}
	}
}

// TestDocExample parses the config file of the package documentation.
func TestDocExample(t *testing.T) {
	path := writeFile(t, `# /etc/stepmon.conf
interval = 5s
collectors = cpu,memory,disk,network,processes,services
paths = /etc,/var/www
process-min-lifetime = 10s
process-exclude = sleep,sh
threshold = disk=90/98
threshold = network=100M/500M
threshold = gpu=off
cooldown = 10m
directory = ""
`)
	o, err := parseArgs([]string{"-c", path}, io.Discard, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if o.interval != 5*time.Second || len(o.collectors) != 6 || strings.Join(o.paths, " ") != "/etc /var/www" ||
		o.cooldown != 10*time.Minute || o.directory != "" || o.processes.minLifetime != 10*time.Second ||
		strings.Join(o.processes.exclude, " ") != "sleep sh" {
		t.Errorf("options %+v", o)
	}
	acfg, err := o.alertConfig(nil)
	if err != nil || len(acfg.Rules) != 5 {
		t.Errorf("rules %v, %v", acfg.Rules, err)
	}
}
