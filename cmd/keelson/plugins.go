package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/keelson-dev/keelson/internal/plugin"
	_ "github.com/keelson-dev/keelson/internal/plugin/all"
)

func runPlugins(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keelson plugins", flag.ContinueOnError)
	fs.SetOutput(stderr)
	prefix := fs.String("prefix", "", "list only plugins whose name starts with this, e.g. store.backend.")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: keelson plugins [--prefix P]\n\nLists the plugins compiled into this binary: name, config version, summary.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCONFIG\tSUMMARY")
	for _, info := range plugin.List(*prefix) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", info.Name, info.ConfigVersion, info.Summary)
	}
	return tw.Flush()
}
