package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/stk-go/stk/hostmon"
)

// configLine is one "key = value" line of a config file.
type configLine struct {
	key, value string
	line       int
}

// maxConfigSize bounds a config file: it is a page of settings.
const maxConfigSize = 1 << 20

// parseConfig reads "key = value" lines. Blank lines and lines starting
// with '#' are skipped; a value may be double-quoted (Go syntax), which is
// how to give an empty one: directory = "".
func parseConfig(r io.Reader) ([]configLine, error) {
	var out []configLine
	sc := bufio.NewScanner(io.LimitReader(r, maxConfigSize))
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not key = value", n, text)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key == "" {
			return nil, fmt.Errorf("line %d: %q has no key before '='", n, text)
		}
		if strings.HasPrefix(value, `"`) {
			v, err := strconv.Unquote(value)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: the value %s is not a well-formed \"quoted string\"", n, key, value)
			}
			value = v
		}
		out = append(out, configLine{key: key, value: value, line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// notInFile are flags a config file cannot set.
var notInFile = map[string]bool{"config": true, "help": true}

// applyConfigFile sets fs's flags from the file at path, except those the
// command line set (flags win over the file). Threshold lines are returned
// instead, to be applied before the command line's, rule by rule.
func applyConfigFile(fs *pflag.FlagSet, path string, fromCmdline map[string]bool) (thresholds []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	lines, err := parseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, l := range lines {
		fl := fs.Lookup(l.key)
		if fl == nil || notInFile[l.key] {
			return nil, fmt.Errorf("%s:%d: unknown key %q (keys are the long flag names: %s)", path, l.line, l.key, fileKeys(fs))
		}
		if l.key == "threshold" {
			thresholds = append(thresholds, l.value)
			continue
		}
		if fromCmdline[l.key] {
			continue
		}
		if err := fs.Set(l.key, l.value); err != nil {
			return nil, fmt.Errorf("%s:%d: %s = %q: %w", path, l.line, l.key, l.value, unwrapFlagErr(err))
		}
	}
	return thresholds, nil
}

// unwrapFlagErr drops pflag's "invalid argument ... for ... flag:" wrapper,
// which names a flag the file did not use.
func unwrapFlagErr(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

func fileKeys(fs *pflag.FlagSet) string {
	var keys []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !notInFile[f.Name] {
			keys = append(keys, f.Name)
		}
	})
	return strings.Join(keys, ", ")
}

// applyThresholds applies "NAME=WARN/CRIT" and "NAME=off" settings, in
// order, to rules.
func applyThresholds(rules []hostmon.Rule, settings []string) ([]hostmon.Rule, error) {
	for _, s := range settings {
		name, spec, ok := strings.Cut(strings.TrimSpace(s), "=")
		name, spec = strings.TrimSpace(name), strings.TrimSpace(spec)
		if !ok || name == "" || spec == "" {
			return nil, fmt.Errorf("--threshold %q: want NAME=WARN/CRIT (e.g. cpu=80/95, network=10M/20M) or NAME=off", s)
		}
		i := -1
		for j := range rules {
			if rules[j].Name == name {
				i = j
			}
		}
		if i < 0 {
			var names []string
			for _, r := range hostmon.DefaultRules() {
				names = append(names, r.Name)
			}
			return nil, fmt.Errorf("--threshold %q: no rule %q (rules: %s)", s, name, strings.Join(names, ", "))
		}
		if spec == "off" {
			rules = append(rules[:i:i], rules[i+1:]...)
			continue
		}
		ws, cs, ok := strings.Cut(spec, "/")
		if !ok {
			return nil, fmt.Errorf("--threshold %q: want WARN/CRIT after %s=, e.g. %s=%s", s, name, name, example(rules[i]))
		}
		w, err := parseAmount(ws)
		if err != nil {
			return nil, fmt.Errorf("--threshold %q: warning: %w", s, err)
		}
		c, err := parseAmount(cs)
		if err != nil {
			return nil, fmt.Errorf("--threshold %q: critical: %w", s, err)
		}
		r := rules[i]
		r.Warning, r.Critical = w, c
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("--threshold %q: %w", s, err)
		}
		rules[i] = r
	}
	return rules, nil
}

func example(r hostmon.Rule) string {
	if r.Unit == hostmon.UnitBytesPerSec {
		return fmt.Sprintf("%gM/%gM", r.Warning/1e6, r.Critical/1e6)
	}
	return fmt.Sprintf("%g/%g", r.Warning, r.Critical)
}

// parseAmount reads a threshold: a number with an optional SI suffix k, M
// or G (1e3, 1e6, 1e9) or a trailing '%' (ignored: percent thresholds are
// plain numbers).
func parseAmount(s string) (float64, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "%"):
		s = s[:len(s)-1]
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		s, mult = s[:len(s)-1], 1e3
	case strings.HasSuffix(s, "M"):
		s, mult = s[:len(s)-1], 1e6
	case strings.HasSuffix(s, "G"):
		s, mult = s[:len(s)-1], 1e9
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number (suffixes k, M, G multiply by 1e3, 1e6, 1e9)", s)
	}
	return v * mult, nil
}
