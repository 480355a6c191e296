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

// ReportEvent sends the host an event of kind (EventReady or EventSettled),
// doing first what the event promises: once settled, the boot's page cache
// is dropped; ready carries the boot timings.
func ReportEvent(kind contract.EventKind) error {
	e := contract.Event{Kind: kind}
	switch kind {
	case contract.EventSettled:
		// The I/O forwarder starts reporting the apps' ends now; a
		// failure only delays that (it starts anyway after a while).
		if err := signalForwarder(unix.SIGUSR1); err != nil {
			fmt.Fprintf(os.Stderr, "stage1-guest: %v\n", err)
		}
		// Only memory is at stake: report the failure, go on.
		if err := TrimMemory(); err != nil {
			fmt.Fprintf(os.Stderr, "stage1-guest: %v\n", err)
		}
	case contract.EventReady:
		if bt, err := ReadBootTimes(); err == nil {
			e.KernelMs, e.TotalMs = bt.KernelMs, bt.TotalMs
		}
	default:
		return fmt.Errorf("event %q: only %s and %s are sent this way", kind, contract.EventReady, contract.EventSettled)
	}
	return Send(contract.EventsPort, e.String())
}

// signalForwarder sends sig to the I/O forwarder (contract.IOPidFile).
func signalForwarder(sig unix.Signal) error {
	b, err := os.ReadFile(contract.IOPidFile)
	if err != nil {
		return fmt.Errorf("find the I/O forwarder: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s: bad PID %q", contract.IOPidFile, b)
	}
	if err := unix.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal the I/O forwarder (PID %d): %w", pid, err)
	}
	return nil
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
