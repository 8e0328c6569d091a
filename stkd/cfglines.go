package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// stkd's own config-file settings, one per line "key: value...", each
// named after the flag that sets the same thing (a flag given to stkd
// wins over its line). C ignores these lines.

// cfgSetting is one such line.
type cfgSetting struct {
	// list: the values may span several lines, which add up; otherwise
	// the line takes one value and may appear once.
	list bool
	// path: the values are files, taken relative to the config file's
	// directory.
	path bool
	// apply sets the values on c; its error names what is wrong with
	// them.
	apply func(c *config, vals []string) error
}

// cfgSettings are the lines by key; httpsec.go and tls.go add theirs.
var cfgSettings = map[string]cfgSetting{}

// yesNoSetting is a line taking yes or no for the boolean field of c that
// field returns.
func yesNoSetting(field func(c *config) *bool) cfgSetting {
	return cfgSetting{apply: func(c *config, vals []string) error {
		v, err := parseYesNo(vals[0])
		if err == nil {
			*field(c) = v
		}
		return err
	}}
}

// stringSetting is a line taking one value (a file if path) for the
// string field of c that field returns.
func stringSetting(path bool, field func(c *config) *string) cfgSetting {
	return cfgSetting{path: path, apply: func(c *config, vals []string) error {
		*field(c) = vals[0]
		return nil
	}}
}

// cfgSettingLines applies the cfgSettings lines of a config file (b,
// read from path) to c, recording where each setting came from in o.
// Every bad line is reported, with its file and line.
func cfgSettingLines(b []byte, path string, c *config, o origins) error {
	var errs []error
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		k, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		key := strings.ToLower(strings.TrimSpace(k))
		set, known := cfgSettings[key]
		if !ok || !known {
			continue
		}
		where := fmt.Sprintf("%s:%d", path, n)
		bad := func(err error) { errs = append(errs, fmt.Errorf("%s: %s: %w", where, key, err)) }
		vals := strings.Fields(rest)
		if first := seen[key]; first != 0 && !set.list {
			bad(fmt.Errorf("a second line (the first is line %d): keep one", first))
			continue
		}
		seen[key] = n
		switch {
		case len(vals) == 0 && set.list:
			bad(errors.New("want one or more values, space-separated"))
			continue
		case len(vals) != 1 && !set.list:
			bad(errors.New("want one value"))
			continue
		}
		if set.path {
			for i, v := range vals {
				if !filepath.IsAbs(v) {
					vals[i] = filepath.Join(filepath.Dir(path), v)
				}
			}
		}
		if err := set.apply(c, vals); err != nil {
			bad(err)
			continue
		}
		if o != nil {
			o[key] = where + " " + key + ":"
		}
	}
	return errors.Join(errs...)
}

// parseYesNo parses a config file's boolean: yes/no, true/false, on/off,
// 1/0.
func parseYesNo(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "true", "on", "1":
		return true, nil
	case "no", "false", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q: want yes or no", s)
}
