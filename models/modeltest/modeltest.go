// Package modeltest makes test bundles from the embedded default model: the model itself
// (Default), the same model under
// another version (a valid, distinct bundle, since check vectors do not depend on the version),
// optionally with its manifest edited, and the SHA-256 an upload announces. Tests of the model
// store, the admin API and the CLI share it.
package modeltest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/churnhq/churn/internal/bundle"
	"github.com/churnhq/churn/models"
)

// Default returns the embedded default bundle, parsed.
func Default(t testing.TB) *bundle.Bundle {
	t.Helper()
	data, err := models.FS.ReadFile(models.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WithVersion returns the default bundle with its manifest version set to version and then, when
// edit is not nil, the decoded manifest changed by edit (e.g. to break a check vector).
func WithVersion(t testing.TB, version string, edit func(manifest map[string]any)) []byte {
	t.Helper()
	data, err := models.FS.ReadFile(models.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	manifest := raw["manifest"].(map[string]any)
	manifest["version"] = version
	if edit != nil {
		edit(manifest)
	}
	out, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// BreakCheckVector moves the first check vector's probability by 0.01: an edit for WithVersion
// that makes a bundle the loader must refuse.
func BreakCheckVector(manifest map[string]any) {
	cv := manifest["check_vectors"].([]any)[0].(map[string]any)
	cv["probability"] = cv["probability"].(float64) + 0.01
}

// SHA256 is the lower-case hex SHA-256 of data, as UploadMetadata.sha256 wants it.
func SHA256(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
