package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camgate/camgate/internal/admin"
	"github.com/camgate/camgate/internal/config"
	"github.com/camgate/camgate/internal/store"
)

const adminHelp = `
Admin account tasks.

  camgate admin reset-password [--config camgate.yaml] [--user NAME] [--password-file FILE]

reset-password sets a new password for the web UI's owner account, or
creates the account if there is none yet. It works offline, for an owner
who is locked out: it only writes the account file in the state directory.
A running gateway notices at once; every existing session ends.

The new password is read from --password-file (its first line), or from the
terminal (asked twice, not echoed), or from the first line of standard
input. It is never taken from the command line, where other users and the
shell history would see it. It must pass the same strength check as the UI.`

func runAdmin(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(e.stdout, strings.TrimSpace(adminHelp))
		if len(args) == 0 {
			return fmt.Errorf("%w: missing task (reset-password)", errUsage)
		}
		return nil
	}
	switch args[0] {
	case "reset-password":
		return runResetPassword(ctx, e, args[1:])
	default:
		return fmt.Errorf("%w: unknown task %q (reset-password)", errUsage, args[0])
	}
}

func runResetPassword(ctx context.Context, e *env, args []string) error {
	fl := newFlags(e, "admin reset-password", "[--config camgate.yaml] [--user NAME] [--password-file FILE]", adminHelp)
	path := fl.String("config", "camgate.yaml", "config file (its state directory holds the account)")
	user := fl.String("user", "", "user name (default: keep the current one, or \"admin\")")
	pwFile := fl.String("password-file", "", "read the new password from the first line of this file")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (the password is never taken from the command line)", errUsage, fl.Arg(0))
	}
	dir, err := stateDirOf(*path)
	if err != nil {
		return err
	}
	pw, err := readNewPassword(e, *pwFile)
	if err != nil {
		return err
	}
	if err := admin.ResetPassword(dir, *user, pw, time.Now()); err != nil {
		var weak *admin.WeakPasswordError
		if errors.As(err, &weak) {
			fmt.Fprintln(e.stderr, "camgate admin reset-password: the password is too weak:")
			for _, p := range weak.Strength.Problems {
				fmt.Fprintln(e.stderr, "  "+p)
			}
			fmt.Fprintln(e.stderr, "  "+weak.Strength.Advice)
			return exitError(1)
		}
		return err
	}
	if err := admin.Append(dir, admin.AuditEntry{Who: "cli", Action: "password.reset", Target: *user, From: "local", OK: true,
		Detail: "camgate admin reset-password"}); err != nil {
		fmt.Fprintf(e.stderr, "camgate admin reset-password: warning: %v\n", err)
	}
	fmt.Fprintf(e.stdout, "Password set (account file %s/%s). Existing sessions have ended; log in to the web UI with the new password.\n",
		dir, admin.AccountFile)
	return nil
}

// stateDirOf returns the state directory for the config at path; the
// config may be missing or invalid (a locked-out owner may be fixing
// both), in which case the default next to it is used unless state_dir
// can still be read.
func stateDirOf(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return store.StateDir(path, nil), nil
	}
	if err != nil {
		return "", err
	}
	cfg, _ := config.Parse(data)
	return store.StateDir(path, cfg), nil
}

// readNewPassword reads the password from a file, the terminal (twice,
// without echo) or standard input.
func readNewPassword(e *env, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return firstLine(string(b)), nil
	}
	fd := int(os.Stdin.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
		if err != nil {
			return "", err
		}
		if firstLine(string(b)) == "" {
			return "", fmt.Errorf("%w: no password on standard input (or use --password-file)", errUsage)
		}
		return firstLine(string(b)), nil
	}
	pw, err := promptNoEcho(e, fd, "New admin password: ")
	if err != nil {
		return "", err
	}
	again, err := promptNoEcho(e, fd, "Repeat it: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the two passwords differ; nothing changed")
	}
	return pw, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimRight(line, "\r")
}

// promptNoEcho reads one line from the terminal with echo off.
func promptNoEcho(e *env, fd int, prompt string) (string, error) {
	fmt.Fprint(e.stderr, prompt)
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", err
	}
	defer func() {
		unix.IoctlSetTermios(fd, unix.TCSETS, old)
		fmt.Fprintln(e.stderr)
	}()
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return firstLine(line), nil
}
