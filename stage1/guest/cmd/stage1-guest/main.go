// Command stage1-guest is our program inside the VM. As PID 1 (the kernel's
// init=) it prepares the guest and execs systemd; as a unit's command it
// forwards the apps' I/O and reports to the host.
//
//	stage1-guest                                (as PID 1) pre-init, then exec systemd
//	stage1-guest io --apps=a,b [--interactive=a] the apps' I/O forwarder (a notify service)
//	stage1-guest app-exited --apps=a,b A       record app A's end (ExecStopPost=)
//	stage1-guest event ready                   tell the host the apps are started
//	stage1-guest agent                         the guest agent: enter and stop requests (a notify service)
//	stage1-guest sysctl k=v ...                set the pod's sysctl parameters
//	stage1-guest selftest                      report boot timings
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/stage1-kvm/stage1-kvm/stage1/events"
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
		return fmt.Errorf("usage: stage1-guest io|app-exited|event|agent|selftest")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ContinueOnError)
	apps := fs.String("apps", "", "comma-separated apps of the pod")
	interactive := fs.String("interactive", "", "the app reading the host's stdin")
	if err := fs.Parse(os.Args[2:]); err != nil {
		return err
	}
	appList := strings.Split(*apps, ",")
	switch os.Args[1] {
	case "io":
		return guest.ForwardIO(appList, *interactive)
	case "app-exited":
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: stage1-guest app-exited --apps=a,b APP")
		}
		return guest.AppExited(fs.Arg(0), appList)
	case "event":
		if fs.NArg() != 1 || (fs.Arg(0) != string(events.Ready) && fs.Arg(0) != string(events.Settled)) {
			return fmt.Errorf("usage: stage1-guest event ready|settled")
		}
		e := events.Event{Kind: events.Kind(fs.Arg(0))}
		if e.Kind == events.Settled {
			// Only memory is at stake: report the failure, go on.
			if err := guest.TrimMemory(); err != nil {
				fmt.Fprintf(os.Stderr, "stage1-guest: %v\n", err)
			}
		}
		if e.Kind == events.Ready {
			if bt, err := guest.ReadBootTimes(); err == nil {
				e.KernelMs, e.TotalMs = bt.KernelMs, bt.TotalMs
			}
		}
		return guest.Send(guest.EventsPort, e.String())
	case "agent":
		if fs.NArg() != 0 {
			return fmt.Errorf("usage: stage1-guest agent")
		}
		return guest.RunAgent()
	case "sysctl":
		return guest.WriteSysctls(fs.Args())
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
