package guest

import (
	"fmt"
	"os"
	"strconv"
	"strings"

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

// String formats the times as the boot marker line the host parses.
func (b BootTimes) String() string {
	return fmt.Sprintf("ready kernel_ms=%d total_ms=%d", b.KernelMs, b.TotalMs)
}

// ParseBootTimes parses a marker line written by String.
func ParseBootTimes(line string) (BootTimes, error) {
	var b BootTimes
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "ready kernel_ms=%d total_ms=%d", &b.KernelMs, &b.TotalMs); err != nil {
		return BootTimes{}, fmt.Errorf("parse boot marker %q: %w", line, err)
	}
	return b, nil
}
