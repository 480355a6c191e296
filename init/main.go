// Command init is the stage1 run entry point (/init in the ACI). rkt execs it
// in the pod directory; it boots the pod's VM, supervises it and exits with
// the pod's exit code (rkt run's exit code). Exit codes follow stage1/cli.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/runflags"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/supervisor"
)

// started is taken as early as Go allows, for the pod's start timings.
var started = time.Now()

const prog = "stage1 run"

func main() {
	flags, err := runflags.Parse(os.Args[1:])
	if err != nil {
		cli.Exit(prog, 0, err)
	}
	set, err := settings.FromEnv(os.Getenv)
	if err != nil {
		cli.Exit(prog, 0, err)
	}
	dir, err := os.Getwd()
	if err != nil {
		cli.Exit(prog, 0, err)
	}
	code, err := supervisor.Run(supervisor.Options{
		Started:  started,
		PodDir:   dir,
		Flags:    flags,
		Settings: set,
		Stdin:    os.Stdin,
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
	})
	if err != nil {
		err = fmt.Errorf("pod %s: %w", flags.UUID, err)
	}
	cli.Exit(prog, code, err)
}
