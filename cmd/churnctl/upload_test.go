package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadBundleFile(t *testing.T) {
	t.Parallel()
	big := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file one byte over the limit: refused from its size, never read.
	if err := f.Truncate(maxUploadBytes + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	exact := filepath.Join(t.TempDir(), "exact.json")
	if err := os.WriteFile(exact, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, wantErr string
	}{
		{"over the limit", big, "64.0 MiB (67108865 bytes) is over the upload limit of 64.0 MiB (67108864 bytes)"},
		{"empty", writeTemp(t, "empty.json", nil), "file is empty"},
		{"missing", filepath.Join(t.TempDir(), "nope.json"), "no such file"},
		{"directory", t.TempDir(), "not a regular file"},
		{"fine", exact, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data, err := readBundleFile(tc.path)
			if tc.wantErr == "" {
				if err != nil || string(data) != "{}" {
					t.Fatalf("readBundleFile = %q, %v", data, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestUploadUsage covers the exits that never reach a server: the address is one nothing listens
// on, so a call would fail with Unavailable instead.
func TestUploadUsage(t *testing.T) {
	t.Parallel()
	big := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxUploadBytes + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no file", nil, 2, "want one bundle file, got 0"},
		{"two files", []string{"a.json", "b.json"}, 2, "want one bundle file, got 2"},
		{"bad flag", []string{"--activte", "a.json"}, 2, "flag provided but not defined: -activte"},
		{"help", []string{"-h"}, 0, "usage: churnctl upload"},
		{"too large", []string{big}, 1, "churnctl upload: " + big + ": 64.0 MiB (67108865 bytes) is over the upload limit"},
		{"missing file", []string{"--addr", "127.0.0.1:1", "/nonexistent/b.json"}, 1, "churnctl upload: open /nonexistent/b.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := uploadMain(context.Background(), append([]string{"--addr", "127.0.0.1:1"}, tc.args...), &stdout, &stderr, noEnv, false)
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.wantCode, tc.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

func TestUploadBarCountsBytes(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	bar := newUploadBar(&buf, 3*uploadChunkBytes)
	for range 3 {
		if err := bar.Add(uploadChunkBytes); err != nil {
			t.Fatal(err)
		}
	}
	if !bar.IsFinished() {
		t.Error("bar not finished after every byte")
	}
	out := buf.String()
	if !strings.Contains(out, "uploading") || !strings.Contains(out, "100%") || !strings.Contains(out, "3.0/3.0 MiB") {
		t.Errorf("bar output lacks the description, 100%% or the byte count:\n%q", out)
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("bar does not end its line: %q", out)
	}
}
