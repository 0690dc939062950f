// Command keelson is the single binary of the Keelson project. Each
// component is a subcommand; this file only dispatches.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand. run gets the arguments after the subcommand
// name and a context cancelled on SIGINT/SIGTERM.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"store", "serve the etcd v3 API on an embedded engine or a SQL database", runStore},
		{"scheduler", "schedule pods: pluggable, all nodes scored, several active instances", runScheduler},
		{"federation", "propagate objects from a host to member clusters; join, unjoin, explain", runFederation},
		{"up", "run a local cluster: store, kube-apiserver, controllers, scheduler, kwok nodes", runUp},
		{"plugins", "list the plugins compiled into this binary", runPlugins},
		{"version", "print the version", runVersion},
	}
}

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "0.1.0-dev"

func usage(w io.Writer) {
	fmt.Fprintf(w, "keelson makes Kubernetes carry more.\n\nUsage:\n  keelson <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'keelson <command> --help' for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(stderr, "keelson %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "keelson: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage is returned by a command whose flags were wrong; the flag
// package has already printed the reason.
var errUsage = errors.New("usage")

// parseFlags parses args with fs, mapping the flag package's errors to
// errUsage / flag.ErrHelp. fs must use flag.ContinueOnError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keelson version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "keelson %s\n", Version)
	return nil
}
