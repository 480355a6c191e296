package harness

import (
	"errors"
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
