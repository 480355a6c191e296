package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Alive reports whether a process with that PID exists (and is not a zombie
// we could still reap: callers reap their own children first).
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// MustBeGone fails the test loudly if pid still exists, then kills it so one
// leak does not poison the next test.
func MustBeGone(t testing.TB, what string, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for Alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if Alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("LEAK: %s (pid %d) outlived its test; killed it", what, pid)
	}
}

// ProcessesMentioning lists the processes (other than this one) whose
// command line contains s.
func ProcessesMentioning(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// SocketsUnder lists the UNIX sockets below dir.
func SocketsUnder(dir string) []string {
	var socks []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSocket != 0 {
			socks = append(socks, path)
		}
		return nil
	})
	return socks
}

// ProcessState is process pid's state letter from /proc (R, S, T stopped,
// Z zombie, ...), or "" if it is gone.
func ProcessState(pid int) string {
	_, f, ok := procStat(pid)
	if !ok || len(f) == 0 {
		return ""
	}
	return f[0]
}

// ProcessCPUTicks is the user and system CPU time pid has used, all its
// threads included, in clock ticks (USER_HZ); 0 if it cannot be read.
func ProcessCPUTicks(pid int) int64 {
	_, f, ok := procStat(pid)
	// After the name: state is the 1st field, utime and stime the 12th
	// and 13th.
	if !ok || len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// PodCgroups lists the cgroup directories named for the pod of uuid
// (stage1-kvm-<uuid>, the pod's memory bound) anywhere under the cgroup
// file systems.
func PodCgroups(uuid string) []string {
	var found []string
	for _, d := range Stage1Cgroups() {
		if filepath.Base(d) == "stage1-kvm-"+uuid {
			found = append(found, d)
		}
	}
	return found
}

// Stage1Cgroups lists every cgroup directory a stage1-kvm pod made
// (stage1-kvm-*) under the cgroup file systems.
func Stage1Cgroups() []string {
	var found []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), "stage1-kvm-") {
			found = append(found, p)
			return fs.SkipDir
		}
		return nil
	})
	return found
}
