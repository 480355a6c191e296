package supervisor

import (
	"errors"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
)

// Under TCG, QEMU keeps every piece of guest code it has translated until
// its code buffer (64 MiB) fills. Code a guest ran once (an enter, a burst
// of work, a kernel thread retiring) stays in host memory while the pod
// idles; run drops it once the guest is idle again, and the code the
// guest still runs is translated anew (an idle guest's: ~1.3 MiB, ~30 ms
// of CPU).
const (
	// trimPeriod is how often run looks at the size of the translated code.
	trimPeriod = 30 * time.Second
	// trimMargin is how far the translated code may grow past what it
	// held one period after the last flush (the code the guest was
	// running then) before it is dropped. Below it a flush costs more CPU
	// than the memory is worth: an idle pod's workqueue retiring an extra
	// kernel thread five minutes after its start adds ~0.7 MiB.
	trimMargin = 512 << 10
	// trimSlack is the growth within one period that still counts as
	// steady: the guest is running code already translated.
	trimSlack = 64 << 10
)

// codeTrimmer decides when to drop the translated code, from its size
// sampled every trimPeriod: once it has grown trimMargin past its size
// one period after the last flush and has stopped growing, so that a
// guest at work is left alone and a guest whose steady code is large is
// not flushed over and over.
type codeTrimmer struct {
	baseline int64 // size one period after the last flush
	last     int64 // the previous sample
	measured bool  // baseline taken since the last flush
}

// observe takes a sample and says whether to flush now.
func (t *codeTrimmer) observe(size int64) bool {
	if !t.measured {
		t.baseline, t.last, t.measured = size, size, true
		return false
	}
	grew := size - t.last
	t.last = size
	if size < t.baseline {
		// QEMU flushed on its own (its buffer was full).
		t.baseline = size
	}
	return grew < trimSlack && size-t.baseline >= trimMargin
}

// flushed starts over after a flush: the next sample is the new baseline.
func (t *codeTrimmer) flushed() { t.measured = false }

// trimTranslations samples the translated code every trimPeriod until
// the pod ends (done) and flushes it when codeTrimmer says so. Like the
// boot's flushes it only saves memory: a failure is logged and ends it.
func (s *session) trimTranslations(done <-chan struct{}) {
	code, err := s.vm.CodeSampler()
	if errors.Is(err, hypervisor.ErrNotEmulated) {
		return
	}
	if err != nil {
		s.logf("not trimming translated code: %v", err)
		return
	}
	defer code.Close()
	var t codeTrimmer
	tick := time.NewTicker(trimPeriod)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		size, err := code.Sample()
		if err != nil {
			s.logf("no longer trimming translated code: %v", err)
			return
		}
		first := !t.measured
		if !t.observe(size) {
			if first {
				s.logf("translated code at %d KiB one period after the flush", size>>10)
			}
			continue
		}
		if err := s.vm.FlushTranslations(qmpTimeout); err != nil {
			s.logf("no longer trimming translated code: %v", err)
			return
		}
		t.flushed()
		s.logf("dropped %d KiB of translated code the guest no longer runs", size>>10)
	}
}
