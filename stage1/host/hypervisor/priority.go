package hypervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// vCPUNice is the nice value of QEMU's vCPU threads. A guest that spins
// (a busy loop, a poll on a shared file) keeps its vCPU threads running
// flat out; at the same priority they starve QEMU's main loop, which
// serves the guest's network and shared files, and the guest's own I/O
// then waits behind its computation. Measured with appc's validator, whose
// sidekick polls a shared file while the main app queries the metadata
// service within 100 ms.
const vCPUNice = 5

// LowerVCPUPriority gives QEMU's vCPU threads (named "CPU <n>/TCG" or
// "CPU <n>/KVM") a lower priority than its other threads. It returns how
// many threads it changed.
func (v *VM) LowerVCPUPriority() (int, error) {
	dir := filepath.Join("/proc", strconv.Itoa(v.Pid()), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tasks {
		comm, err := os.ReadFile(filepath.Join(dir, t.Name(), "comm"))
		if err != nil || !strings.HasPrefix(string(comm), "CPU ") {
			continue
		}
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, vCPUNice); err != nil {
			return n, fmt.Errorf("renice vCPU thread %d: %w", tid, err)
		}
		n++
	}
	return n, nil
}
