// Command stage1-guest is our program inside the VM. As PID 1 (the kernel's
// init=) it prepares the guest and execs systemd; as a unit's command it
// forwards the apps' I/O and reports to the host. The work is in
// stage1/guest.
//
//	stage1-guest                                (as PID 1) pre-init, then exec systemd
//	stage1-guest configure                     the template point: wait for the pod's configuration, apply it, start the pod
//	stage1-guest io                            the apps' I/O forwarder, exit reporter and guest agent (enter and stop requests; a notify service up from the boot, given its pod by configure)
//	stage1-guest mark                          nothing (what a write to a pod's mark would start)
//	stage1-guest sysctl k=v ...                set the pod's sysctl parameters
//	stage1-guest selftest                      report boot timings
//	stage1-guest warm URL                      a first request to the metadata service
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
	"github.com/stage1-kvm/stage1-kvm/stage1/guest"
)

func main() {
	cli.Exit("stage1-guest", 0, run())
}

func run() error {
	if os.Getpid() == 1 {
		return guest.PreInit()
	}
	if len(os.Args) < 2 {
		return cli.Usagef("stage1-guest configure|io|sysctl|selftest|warm|mark")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ContinueOnError)
	if err := fs.Parse(os.Args[2:]); err != nil {
		return cli.Usagef("%v", err)
	}
	switch cmd := os.Args[1]; {
	case cmd == "io" && fs.NArg() == 0:
		return guest.ForwardIO()
	case cmd == "mark" && fs.NArg() == 0:
		// The marks are FIFOs that systemd makes for the I/O forwarder
		// to see (contract.MarkService): there is nothing to do.
		return nil
	case cmd == "sysctl":
		return guest.WriteSysctls(fs.Args())
	case cmd == "selftest":
		return guest.Selftest()
	case cmd == "configure" && fs.NArg() == 0:
		return guest.Configure()
	case cmd == "warm" && fs.NArg() == 1:
		// Best effort: a failure only costs the apps' first request time.
		if err := guest.Warm(fs.Arg(0)); err != nil {
			fmt.Fprintf(os.Stderr, "stage1-guest: %v\n", err)
		}
		return nil
	case cmd == "io" || cmd == "mark" || cmd == "configure" || cmd == "warm":
		return cli.Usagef("stage1-guest %s: wrong arguments %q", cmd, fs.Args())
	default:
		return cli.Usagef("unknown command %q", fmt.Sprint(cmd))
	}
}
