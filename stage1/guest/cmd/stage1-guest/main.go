// Command stage1-guest is our program inside the VM. As PID 1 (the kernel's
// init=) it prepares the guest and execs systemd; as a unit's command it
// reports to the host.
//
//	stage1-guest             (as PID 1) pre-init, then exec systemd
//	stage1-guest selftest    report boot timings on the events port
package main

import (
	"fmt"
	"os"

	"github.com/stage1-kvm/stage1-kvm/stage1/guest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "stage1-guest: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	if os.Getpid() == 1 {
		return guest.PreInit()
	}
	if len(os.Args) < 2 {
		return fmt.Errorf("usage: stage1-guest selftest")
	}
	switch os.Args[1] {
	case "selftest":
		bt, err := guest.ReadBootTimes()
		if err != nil {
			return err
		}
		return guest.Send(guest.EventsPort, bt.String())
	default:
		return fmt.Errorf("unknown command %q", os.Args[1])
	}
}
