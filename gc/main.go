// Command gc is the stage1 gc entry point: rkt runs it on an exited pod (in
// pods/exited-garbage/<uuid>, as the cwd) to release everything the pod held
// on the host. It is idempotent and safe on pods whose run died at any point;
// it reports every failure and exits non-zero if there was one.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/hostres"
)

func main() {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	debug := fs.Bool("debug", false, "verbose output")
	fs.String("local-config", "/etc/rkt", "rkt's local configuration directory")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "stage1 gc: usage: gc [--debug] [--local-config DIR] UUID")
		os.Exit(2)
	}
	if _, err := types.NewUUID(fs.Arg(0)); err != nil {
		fmt.Fprintf(os.Stderr, "stage1 gc: bad pod UUID %q: %v\n", fs.Arg(0), err)
		os.Exit(2)
	}
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 gc: %v\n", err)
		os.Exit(1)
	}
	if err := hostres.ReleaseAll(dir); err != nil {
		fmt.Fprintf(os.Stderr, "stage1 gc: pod %s: %v\n", fs.Arg(0), err)
		os.Exit(1)
	}
	if *debug {
		fmt.Fprintf(os.Stderr, "stage1 gc: pod %s released\n", fs.Arg(0))
	}
}
