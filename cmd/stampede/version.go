package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

// runVersion prints the module's version, the commit it was built from
// and the Go that built it, from the build information Go embeds.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "version", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	fmt.Fprintln(stdout, versionLine())
	return nil
}

// versionLine is "stampede VERSION (commit REV[, modified], DATE) GO".
func versionLine() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "stampede (no build information)"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, when string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	commit := "commit unknown"
	if rev != "" {
		commit = "commit " + rev[:min(12, len(rev))]
		if modified {
			commit += ", modified"
		}
		if when != "" {
			commit += ", " + when
		}
	}
	return fmt.Sprintf("stampede %s (%s) %s", version, commit, info.GoVersion)
}
