package main

import (
	"bytes"
	"testing"
)

// FuzzConfig: the config file parser and the threshold reader never panic,
// and every line they accept has a key.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("# comment\ninterval = 2s\nthreshold = cpu=70/90\ndirectory = \"\"\n"))
	f.Add([]byte("key = \"unterminated\n= value\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lines, err := parseConfig(bytes.NewReader(b))
		if err == nil {
			for _, l := range lines {
				if l.key == "" {
					t.Fatalf("accepted a line without a key from %q", b)
				}
			}
		}
		parseAmount(string(b))
	})
}
