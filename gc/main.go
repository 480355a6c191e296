// Command gc is the stage1 gc entry point: rkt runs it on an exited pod (in
// pods/exited-garbage/<uuid>, as the cwd) to release everything the pod held
// on the host. It is idempotent and safe on pods whose run died at any point;
// it reports every failure and exits non-zero if there was one (exit codes
// are cli's). The work is in stage1/host/hostres.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hostres"
)

const prog = "stage1 gc"

func main() {
	cli.Exit(prog, 0, run(os.Args[1:]))
}

// run releases the pod in the current directory.
func run(args []string) error {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	verbose := fs.Bool("debug", false, "verbose output")
	fs.String("local-config", "/etc/rkt", "rkt's local configuration directory")
	const usage = "gc [--debug] [--local-config DIR] UUID"
	if err := fs.Parse(args); err != nil {
		return cli.Usagef("%s (%v)", usage, err)
	}
	if fs.NArg() != 1 {
		return cli.Usagef("%s", usage)
	}
	uuid := fs.Arg(0)
	if _, err := types.NewUUID(uuid); err != nil {
		return cli.Usagef("bad pod UUID %q: %v", uuid, err)
	}
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := hostres.ReleaseAll(dir); err != nil {
		return fmt.Errorf("pod %s: %w", uuid, err)
	}
	if *verbose {
		fmt.Fprintf(os.Stderr, "%s: pod %s released\n", prog, uuid)
	}
	return nil
}
