package tests

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// The guest keeps time: its clock source is the TSC (kvm-clock under KVM)
// at the rate the stage1 gives the kernel, not jiffies, which is what a
// guest is left with when calibrating the TSC against the emulated PIT
// fails (as it does under TCG on a slow or busy host). With it the apps'
// timers have nanosecond resolution rather than the tick's 10 ms, and the
// guest idles without a periodic tick (both need a clock good for
// high-resolution timers); its wall clock reads the host's time.
func TestGuestClock(t *testing.T) {
	script := `cat /sys/devices/system/clocksource/clocksource0/current_clocksource
echo "resolution $(awk '/\.resolution:/ {print $2; exit}' /proc/timer_list)"
echo "date $(date +%s)"`
	_, r := runPod(t, harness.RunOpts{Net: "none"}, sh("clock", script))
	end := time.Now()
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	fields := map[string]string{}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, " "); ok {
			fields[k] = v
		}
	}
	if src := strings.TrimSpace(lines[0]); src != "tsc" && src != "kvm-clock" {
		t.Errorf("guest clock source %q, want tsc (or kvm-clock)", src)
	}
	// In nanoseconds: 1 with high-resolution timers, 10000000 (a tick
	// at the guest's HZ of 100) without.
	if res := fields["resolution"]; res != "1" {
		t.Errorf("guest timer resolution %q ns, want 1 (high-resolution timers)", res)
	}
	guest, err := strconv.ParseInt(fields["date"], 10, 64)
	if err != nil {
		t.Fatalf("no date in %q", r.Stdout)
	}
	// The line was written before the pod ended (up to a few seconds
	// before, under TCG); the guest's clock second is truncated.
	if d := end.Unix() - guest; d < -1 || d > 10 {
		t.Errorf("guest date %d, host %d at the pod's end: %d s apart", guest, end.Unix(), d)
	}
}
