// Package podstop makes a pod's run entry point exit, as rkt's stop entry
// point must: gracefully (run turns SIGTERM into an orderly guest power-off:
// apps get SIGTERM, post-stop handlers run, statuses are written) or at once
// (the VM is killed and run exits on its own).
package podstop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hostres"
)

// GraceTimeout bounds a graceful stop; past it the stop is forced. It is a
// little longer than the run entry point's own bound on an orderly power-off
// (supervisor.StopTimeout), so run normally gets to finish it.
const GraceTimeout = 35 * time.Second

// exitWait bounds how long run may take to exit once its VM is gone.
const exitWait = 10 * time.Second

// ErrStillRunning means run did not exit even after its VM was killed.
var ErrStillRunning = errors.New("the pod's run process did not exit")

// Stop stops the pod in podDir.
func Stop(podDir string, force bool) error {
	pid, ok, err := runPid(podDir)
	if err != nil {
		return err
	}
	if !ok {
		return nil // not running: nothing to stop
	}
	if !force {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal run process %d: %w", pid, err)
		}
		if waitGone(pid, podDir, GraceTimeout) {
			return nil
		}
	}
	if err := hostres.KillQEMU(podDir); err != nil {
		return err
	}
	if waitGone(pid, podDir, exitWait) {
		return nil
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if waitGone(pid, podDir, exitWait) {
		return nil
	}
	return fmt.Errorf("%w (pid %d)", ErrStillRunning, pid)
}

// runPid reads <pod>/pid and checks that the process is this pod's run
// entry point (its cwd is the pod directory), so a recycled PID is never
// signalled.
func runPid(podDir string) (int, bool, error) {
	pid, ok, err := hostres.ReadPidFile(filepath.Join(podDir, contract.PidFile))
	if err != nil || !ok {
		return 0, false, err
	}
	return pid, isRun(pid, podDir), nil
}

func isRun(pid int, podDir string) bool {
	cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
	if err != nil {
		return false
	}
	abs, err := filepath.Abs(podDir)
	if err != nil {
		return false
	}
	// rkt moves the pod directory between states; the run process keeps
	// its cwd, whose path the kernel updates.
	return cwd == abs || filepath.Base(cwd) == filepath.Base(abs)
}

func waitGone(pid int, podDir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for isRun(pid, podDir) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
