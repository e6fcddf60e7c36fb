// Package models embeds the default model bundle that ships inside churnd, so that the service
// runs with no files. How the bundle was trained, and the command that reproduces it, is in
// README.md beside this file.
package models

import "embed"

// FS holds the default bundle.
//
//go:embed default.json
var FS embed.FS

// DefaultName is the default bundle's file name in FS.
const DefaultName = "default.json"
