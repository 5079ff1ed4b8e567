package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time by scripts/package.sh:
//
//	-ldflags "-X main.version=1.2.0 -X main.commit=abc1234 -X main.buildDate=2026-12-06T03:00:00Z"
//
// A plain "go build" or "go install" leaves them empty and buildInfo falls
// back to what the toolchain recorded in the binary.
var (
	version   = ""
	commit    = ""
	buildDate = ""
)

// build is what `camgate version` prints and serve logs.
type build struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
	Go      string `json:"go"`
	// Modified is true when the commit had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
}

// buildInfo returns the stamped version, commit and date, each falling back
// to the module's build info: the module version ("go install ...@v1.2.0"),
// and vcs.revision and vcs.time (a build from a git checkout). Whatever is
// still unknown reads "unknown"; the version then reads "dev".
func buildInfo() build {
	return buildInfoFrom(version, commit, buildDate, debug.ReadBuildInfo)
}

func buildInfoFrom(v, c, d string, read func() (*debug.BuildInfo, bool)) build {
	b := build{Version: v, Commit: c, Date: d, Go: runtime.Version()}
	if bi, ok := read(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				if b.Date == "" {
					b.Date = s.Value
				}
			case "vcs.modified":
				b.Modified = c == "" && s.Value == "true"
			}
		}
		if bi.GoVersion != "" {
			b.Go = bi.GoVersion
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

func (b build) String() string {
	commit := b.Commit
	if b.Modified {
		commit += "+modified"
	}
	return fmt.Sprintf("camgate %s (commit %s, built %s, %s)", b.Version, commit, b.Date, b.Go)
}

const versionHelp = `
Print camgate's version, the commit it was built from and the build date.
Packages built with scripts/package.sh stamp all three; a plain "go build"
takes what the Go toolchain recorded (the module version and, from a git
checkout, the commit and its time).`

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "[--json]", versionHelp)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	b := buildInfo()
	if *asJSON {
		return writeJSON(e.stdout, b)
	}
	fmt.Fprintln(e.stdout, b.String())
	return nil
}
