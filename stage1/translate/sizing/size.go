package sizing

import (
	"errors"
	"fmt"

	"github.com/appc/spec/schema/types"
)

// MiB is a mebibyte in bytes.
const MiB = int64(1) << 20

// BaseMemoryMiB is what the guest needs before any app runs: the kernel and
// its page cache, systemd as PID 1, journald and our own guest programs. Apps'
// memory is added on top, so a limit the user sets is memory the app can
// really use.
const BaseMemoryMiB = 96

// DefaultAppMemoryMiB is what an app without a memory limit adds to the VM.
// Memory is not reserved on the host until the guest touches it, so this is
// a ceiling that lets ordinary apps run, not a cost paid up front; users who
// need more say so with a resource/memory isolator (rkt run --memory).
const DefaultAppMemoryMiB = 64

// MemoryAlignMiB is the granularity of the VM's memory size: QEMU and the
// guest kernel map RAM in 2 MiB huge pages most efficiently.
const MemoryAlignMiB = 2

// MaxMemoryMiB bounds the VM's memory. A larger total comes from a mistyped
// limit (a missing "M" suffix, say) and would make QEMU fail obscurely or
// sit trying to map it; refuse it with a clear error instead.
const MaxMemoryMiB = 1 << 20 // 1 TiB

// ErrTooLarge reports a pod whose apps together ask for more than
// MaxMemoryMiB.
var ErrTooLarge = errors.New("pod too large for a VM")

// Size is what the VM is given.
type Size struct {
	MemoryMiB int
	CPUs      int
}

// VMSize computes the VM size for a pod from its apps' effective manifests
// (the pod manifest's app where set, else the image's).
//
// Memory is BaseMemoryMiB plus every app's memory limit (DefaultAppMemoryMiB
// for an app without one), rounded up to MemoryAlignMiB. vCPUs are the sum of
// the apps' CPU limits rounded up to whole cores, at least 1 and at most
// hostCPUs; an app without a CPU limit adds nothing, since without limits
// the apps share whatever the VM has and one vCPU is the cheapest VM to run
// (under TCG each vCPU is a host thread emulating a CPU).
func VMSize(apps []types.App, hostCPUs int) (Size, error) {
	if hostCPUs < 1 {
		return Size{}, fmt.Errorf("host CPU count %d: must be at least 1", hostCPUs)
	}
	memBytes := int64(BaseMemoryMiB) * MiB
	var cpuMilli int64
	for i, app := range apps {
		mem, ok, err := MemoryLimit(app)
		if err != nil {
			return Size{}, fmt.Errorf("app %d: %w", i, err)
		}
		if !ok {
			mem = DefaultAppMemoryMiB * MiB
		}
		// Each term is at most MaxMemoryBytes (2^50): checking after
		// each addition keeps the sum far from overflow.
		memBytes += mem
		if memBytes > int64(MaxMemoryMiB)*MiB {
			return Size{}, fmt.Errorf("memory limits add up to more than %d MiB: %w", MaxMemoryMiB, ErrTooLarge)
		}

		cpu, ok, err := CPULimitMilli(app)
		if err != nil {
			return Size{}, fmt.Errorf("app %d: %w", i, err)
		}
		if ok {
			// Each term is at most MaxCPUMilli: no overflow for
			// any realistic number of apps, and saturate anyway.
			cpuMilli = min(cpuMilli+cpu, MaxCPUMilli)
		}
	}

	align := MemoryAlignMiB * MiB
	memBytes = (memBytes + align - 1) / align * align

	cpus := int((cpuMilli + 999) / 1000)
	cpus = max(cpus, 1)
	cpus = min(cpus, hostCPUs)
	return Size{MemoryMiB: int(memBytes / MiB), CPUs: cpus}, nil
}
