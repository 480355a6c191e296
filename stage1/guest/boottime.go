package guest

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"golang.org/x/sys/unix"
)

// BootTimes are guest-side timings in milliseconds of CLOCK_BOOTTIME, which
// starts with the kernel.
type BootTimes struct {
	// KernelMs is when the kernel ran our pre-init (end of kernel boot).
	KernelMs int64
	// TotalMs is when the marker was sent.
	TotalMs int64
}

// ReadBootTimes reads the pre-init's record and CLOCK_BOOTTIME.
func ReadBootTimes() (BootTimes, error) {
	now, err := bootClockMs()
	if err != nil {
		return BootTimes{}, err
	}
	b, err := os.ReadFile(InitStartFile)
	if err != nil {
		return BootTimes{}, fmt.Errorf("read init start time: %w", err)
	}
	start, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return BootTimes{}, fmt.Errorf("parse %s: %w", InitStartFile, err)
	}
	return BootTimes{KernelMs: start, TotalMs: now}, nil
}

func recordInitStart() error {
	now, err := bootClockMs()
	if err != nil {
		return err
	}
	if err := os.MkdirAll("/run/stage1", 0o755); err != nil {
		return fmt.Errorf("create /run/stage1: %w", err)
	}
	return os.WriteFile(InitStartFile, []byte(strconv.FormatInt(now, 10)+"\n"), 0o644)
}

func bootClockMs() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("read boot clock: %w", err)
	}
	return ts.Nano() / 1e6, nil
}

// reportMarks tells the host of each mark systemd makes (watchMarks), in
// order, doing first what the event promises: ready carries the boot
// timings; once settled, the boot's page cache is dropped and settled is
// closed. Other names are not the pod's marks and are ignored.
func reportMarks(marks <-chan string, settled chan<- struct{}) {
	for m := range marks {
		var e contract.Event
		switch m {
		case contract.ReadyMark:
			e.Kind = contract.EventReady
			if bt, err := ReadBootTimes(); err == nil {
				e.KernelMs, e.TotalMs = bt.KernelMs, bt.TotalMs
			}
		case contract.SettledMark:
			e.Kind = contract.EventSettled
			// Only memory is at stake: report the failure, go on.
			if err := TrimMemory(); err != nil {
				fmt.Fprintf(os.Stderr, "stage1-io: %v\n", err)
			}
			close(settled)
		default:
			continue
		}
		if err := Send(contract.EventsPort, e.String()); err != nil {
			fmt.Fprintf(os.Stderr, "stage1-io: event %s: %v\n", e.Kind, err)
		}
	}
}

// Selftest reports the boot timings of the guest image's self-test boot
// (no pod) as a ready event.
func Selftest() error {
	bt, err := ReadBootTimes()
	if err != nil {
		return err
	}
	return Send(contract.EventsPort, contract.Event{Kind: contract.EventReady, KernelMs: bt.KernelMs, TotalMs: bt.TotalMs}.String())
}
