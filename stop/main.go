// Command stop is the stage1 stop entry point: `stop [--force] UUID`, run by
// rkt in the pod directory. It returns once the pod's run process has exited.
// The work is in stage1/host/podstop; exit codes are cli's.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/podstop"
)

func main() {
	cli.Exit("stage1 stop", 0, run(os.Args[1:]))
}

func run(args []string) error {
	fs := flag.NewFlagSet("stop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	force := fs.Bool("force", false, "kill the VM at once")
	if err := fs.Parse(args); err != nil {
		return cli.Usagef("stop [--force] UUID (%v)", err)
	}
	if fs.NArg() != 1 {
		return cli.Usagef("stop [--force] UUID")
	}
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := podstop.Stop(dir, *force); err != nil {
		return fmt.Errorf("pod %s: %w", fs.Arg(0), err)
	}
	return nil
}
