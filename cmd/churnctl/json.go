package main

import (
	"bytes"
	"encoding/json"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// jsonOptions are those of churnd's HTTP/JSON API (internal/gateway.JSONOptions): lowerCamelCase
// field names, zero values written out. Every --json output goes through printJSON, so that
// every subcommand prints one style.
var jsonOptions = protojson.MarshalOptions{EmitUnpopulated: true}

// printJSON prints m as JSON indented by two spaces. protojson's own Multiline output varies its
// spacing on purpose (so that nobody relies on it); encoding/json's Indent makes it stable.
func printJSON(stdout, stderr io.Writer, prefix string, m proto.Message) int {
	out, err := jsonOptions.Marshal(m)
	if err != nil {
		return failf(stderr, "%s: %v", prefix, err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "  "); err != nil {
		return failf(stderr, "%s: %v", prefix, err)
	}
	buf.WriteByte('\n')
	stdout.Write(buf.Bytes())
	return 0
}
