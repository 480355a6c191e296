// Package hostres releases what a pod holds on the host. The run entry
// point's cleanup stack and the gc entry point call the same functions, so a
// pod whose run died at any point is cleaned up exactly like one that failed
// to start. Every function is idempotent and touches only the given pod.
package hostres

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/fsutil"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/memcg"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/network"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/sharetree"
)

// Sockets are the pod's UNIX sockets, relative to the pod directory (the
// virtiofsd ones aside: contract.VirtiofsSockets matches them).
var Sockets = podSockets()

func podSockets() []string {
	s := []string{contract.AgentSocket}
	for _, p := range contract.Ports {
		s = append(s, p.Socket)
	}
	return append(s, contract.QMPSocket)
}

// WriteQEMUPid records QEMU's PID for stop --force and gc.
func WriteQEMUPid(podDir string, pid int) error {
	return WritePidFile(filepath.Join(podDir, contract.QEMUPidFile), pid, 0o600)
}

// WritePidFile writes a decimal PID file atomically (readers never see a
// partial one), for ReadPidFile.
func WritePidFile(path string, pid int, mode os.FileMode) error {
	return fsutil.WriteFileAtomic(path, []byte(strconv.Itoa(pid)), mode)
}

// QEMUPid returns the recorded QEMU PID if that process is still this pod's
// QEMU (its command line carries the pod's QEMUName: a recycled PID is never
// mistaken for it). ok is false when there is no such process.
func QEMUPid(podDir string) (pid int, ok bool, err error) {
	pid, ok, err = ReadPidFile(filepath.Join(podDir, contract.QEMUPidFile))
	if err != nil || !ok {
		return 0, false, err
	}
	return pid, belongsToPod(pid, podDir), nil
}

// QEMUName is the name the pod's VM gets on QEMU's command line (-name
// guest=...): its marker, for QEMUPid. The jailed QEMU's command line
// names no host path (its paths are the jail's); this one it keeps. It is
// the pod directory, absolute.
func QEMUName(podDir string) string {
	abs, err := filepath.Abs(podDir)
	if err != nil {
		return filepath.Clean(podDir)
	}
	return abs
}

// ReadPidFile reads a decimal PID file; ok is false if it does not exist.
func ReadPidFile(path string) (pid int, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false, fmt.Errorf("bad pid file %s: %q", path, b)
	}
	return pid, true, nil
}

// belongsToPod reports whether pid's command line carries podDir's
// QEMUName (the jailer's does as well: QEMU's arguments are its own).
func belongsToPod(pid int, podDir string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	return namesPod(b, podDir)
}

// namesPod reports whether the command line (NUL-separated, as in
// /proc/<pid>/cmdline) has the argument "guest=<name>" with podDir's
// QEMUName, or a name with the same last element: rkt moves a pod's
// directory between states (run, exited-garbage), and the pod UUID is its
// last element.
func namesPod(cmdline []byte, podDir string) bool {
	want := QEMUName(podDir)
	for _, arg := range strings.Split(string(cmdline), "\x00") {
		name, ok := strings.CutPrefix(arg, "guest=")
		if ok && (name == want || (filepath.IsAbs(name) && filepath.Base(name) == filepath.Base(want))) {
			return true
		}
	}
	return false
}

// KillQEMU kills the pod's QEMU if it still runs and waits (bounded) for it
// to be gone, then forgets its PID.
func KillQEMU(podDir string) error {
	pid, ok, err := QEMUPid(podDir)
	if err != nil {
		return err
	}
	if ok {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill qemu %d: %w", pid, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for belongsToPod(pid, podDir) {
			if time.Now().After(deadline) {
				return fmt.Errorf("qemu %d still alive 5s after SIGKILL", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := os.Remove(filepath.Join(podDir, contract.QEMUPidFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveJail removes the directory QEMU's jail was mounted on (in QEMU's
// mount namespace only: on the host it is empty). It never follows a
// symlink: one in its place is removed itself.
func RemoveJail(podDir string) error {
	if err := os.Remove(filepath.Join(podDir, contract.JailDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// CreateMemcg makes the pod's memory cgroup below run's own, bounded to
// limit bytes, or less if run's own cgroup leaves less room
// (memcg.CapToParent): it returns the bound it set. It is recorded for
// RemoveMemcg first, so that a run killed at any point leaves nothing gc
// cannot find.
func CreateMemcg(podDir string, limit int64) (memcg.Group, int64, error) {
	parent, err := memcg.Parent()
	if err != nil {
		return memcg.Group{}, 0, err
	}
	// A parent without a limit of its own reads as "max" (v2), or as a
	// huge number (v1): nothing to leave room for then.
	if pl, err := parent.Limit(); err == nil {
		capped, ok := memcg.CapToParent(limit, pl)
		if !ok {
			return memcg.Group{}, 0, fmt.Errorf("run's memory cgroup %s allows %d MiB: no room for a VM beside run's %d MiB", parent.Dir, pl>>20, memcg.RunReserveMiB)
		}
		limit = capped
	}
	name := memcg.Name(filepath.Base(podDir))
	rec := filepath.Join(podDir, contract.MemcgFile)
	if err := fsutil.WriteFileAtomic(rec, []byte(filepath.Join(parent.Dir, name)), 0o600); err != nil {
		return memcg.Group{}, 0, err
	}
	g, err := memcg.Create(parent, name, limit)
	if err != nil {
		os.Remove(rec)
		return memcg.Group{}, 0, err
	}
	return g, limit, nil
}

// RemoveMemcg removes the pod's memory cgroup (once QEMU is gone) and its
// record. Only a cgroup directory named for this pod is touched.
func RemoveMemcg(podDir string) error {
	rec := filepath.Join(podDir, contract.MemcgFile)
	b, err := os.ReadFile(rec)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	dir := filepath.Clean(string(b))
	if !strings.HasPrefix(dir, memcg.Root+"/") || filepath.Base(dir) != memcg.Name(filepath.Base(podDir)) {
		return fmt.Errorf("%s names %q, not this pod's memory cgroup", rec, dir)
	}
	if err := (memcg.Group{Dir: dir}).Remove(); err != nil {
		return err
	}
	return os.Remove(rec)
}

// RemoveSockets removes the pod's sockets.
func RemoveSockets(podDir string) error {
	var errs *multierror.Error
	paths, _ := filepath.Glob(filepath.Join(podDir, contract.VirtiofsSockets))
	for _, s := range Sockets {
		paths = append(paths, filepath.Join(podDir, s))
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = multierror.Append(errs, err)
		}
	}
	// Those of a template's making that run did not live to remove.
	if err := os.RemoveAll(filepath.Join(podDir, contract.TemplateSocketsDir)); err != nil {
		errs = multierror.Append(errs, err)
	}
	return errs.ErrorOrNil()
}

// ReleaseAll releases everything, going on past failures and returning them
// all.
func ReleaseAll(podDir string) error {
	var errs *multierror.Error
	for _, step := range []struct {
		name string
		do   func(string) error
	}{
		{"stop qemu", KillQEMU},
		{"remove the memory cgroup", RemoveMemcg},
		{"remove the pod share", func(podDir string) error {
			return sharetree.Remove(filepath.Join(podDir, contract.ShareDir))
		}},
		// After QEMU: its taps are closed by then.
		{"release the network", network.Release},
		{"remove sockets", RemoveSockets},
		{"remove the jail directory", RemoveJail},
	} {
		if err := step.do(podDir); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", step.name, err))
		}
	}
	return errs.ErrorOrNil()
}
