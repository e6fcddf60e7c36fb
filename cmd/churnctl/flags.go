package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parseNoArgs parses the flags of a subcommand that takes no positional arguments. When it
// returns ok false the command must exit with code: 0 after -h, 2 after a bad flag or a stray
// argument (the usage has been written to stderr).
func parseNoArgs(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// parseTriple parses "a,b,c" into three numbers for the flag named flagName; example shows a
// valid value in the error.
func parseTriple(flagName, s, what, example string) ([3]float64, error) {
	var v [3]float64
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return v, fmt.Errorf("%s %q: want three %s medium,high,critical, e.g. %s", flagName, s, what, example)
	}
	for i, p := range parts {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return v, fmt.Errorf("%s %q: %q is not a number", flagName, s, p)
		}
		v[i] = x
	}
	return v, nil
}
