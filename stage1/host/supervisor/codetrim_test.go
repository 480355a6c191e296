package supervisor

import "testing"

func TestCodeTrimmer(t *testing.T) {
	const KiB = 1 << 10
	steps := []struct {
		size  int64
		flush bool
		why   string
	}{
		{1300 * KiB, false, "first sample after the flush: the baseline"},
		{1310 * KiB, false, "steady, near the baseline"},
		{6000 * KiB, false, "an enter: still growing"},
		{6020 * KiB, true, "grown past the margin and steady"},
		{1300 * KiB, false, "after the flush: the new baseline"},
		{1300*KiB + trimMargin - 1, false, "growing"},
		{1300*KiB + trimMargin - 1, false, "steady, just under the margin"},
		{1300*KiB + trimMargin + 10*KiB, true, "steady (grew less than trimSlack), past the margin"},
		{9000 * KiB, false, "a busy guest: its steady code is the baseline"},
		{9000 * KiB, false, "steady but not past the margin: never flushed over and over"},
		{9030 * KiB, false, "the same"},
		{200 * KiB, false, "QEMU flushed on its own: a lower baseline"},
		{200*KiB + trimMargin, false, "growing again"},
		{200*KiB + trimMargin + 8*KiB, true, "steady: the margin counts from the lower baseline"},
	}
	var tr codeTrimmer
	for i, st := range steps {
		got := tr.observe(st.size)
		if got != st.flush {
			t.Fatalf("step %d (%s): observe(%d) = %v, want %v", i, st.why, st.size, got, st.flush)
		}
		if got {
			tr.flushed()
		}
	}
}
