package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/syncio"
)

// strayGrace is how long processes of a finished child's group may take to
// go away before they count as leaked.
const strayGrace = 5 * time.Second

// outputGrace is how long captured output may keep flowing after the child
// and its process group are gone (or allowed to stay).
const outputGrace = 2 * time.Second

// child is a stage1 entry point started by the harness: in its own process
// group, bounded by a timeout that kills the whole group, with its output
// optionally captured.
type child struct {
	// Cmd is the started process; Pid its PID (and process group ID).
	Cmd *exec.Cmd
	Pid int

	t           testing.TB
	what        string
	timeout     time.Duration
	allowStrays bool
	stdout      capture
	stderr      capture
	started     time.Time
	timer       *time.Timer
	timedOut    atomic.Bool
	reaped      atomic.Bool
	once        sync.Once
	res         RunResult
	waitErr     error
}

func newChild(t testing.TB, what string, cmd *exec.Cmd, timeout time.Duration, allowStrays bool) *child {
	// Leave the test a moment to report rather than be killed by go test.
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			if left := time.Until(dl) - 10*time.Second; left > 0 && left < timeout {
				timeout = left
			}
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Bounds Wait when a caller-supplied Stdin/Stdout/Stderr that is not a
	// file makes exec copy in goroutines that may never finish.
	cmd.WaitDelay = strayGrace
	return &child{Cmd: cmd, t: t, what: what, timeout: timeout, allowStrays: allowStrays}
}

// outOr returns w, or a pipe into the captured stdout if w is nil. Capturing
// through our own pipe (not exec's) lets Wait return when the process
// exits even if something it left behind still holds the pipe.
func (c *child) outOr(w io.Writer) io.Writer {
	if w != nil {
		return w
	}
	return c.stdout.pipe()
}

func (c *child) errOr(w io.Writer) io.Writer {
	if w != nil {
		return w
	}
	return c.stderr.pipe()
}

func (c *child) start() error {
	c.started = time.Now()
	err := c.Cmd.Start()
	// The child has its copies; ours would keep the pipes from ever ending.
	c.stdout.closeWriter()
	c.stderr.closeWriter()
	if err != nil {
		return fmt.Errorf("%s: %w", c.Cmd.Path, err)
	}
	c.Pid = c.Cmd.Process.Pid
	c.timer = time.AfterFunc(c.timeout, func() {
		c.timedOut.Store(true)
		syscall.Kill(-c.Pid, syscall.SIGKILL)
	})
	c.t.Cleanup(func() {
		if !c.reaped.Load() {
			c.t.Logf("%s still running at the end of the test: killing its process group", c.what)
			syscall.Kill(-c.Pid, syscall.SIGKILL)
		}
		c.wait()
		killGroup(c.Pid)
	})
	return nil
}

// wait reaps the child once; safe to call from any goroutine.
func (c *child) wait() RunResult {
	c.once.Do(func() {
		err := c.Cmd.Wait()
		c.timer.Stop()
		c.res.Duration = time.Since(c.started)
		c.res.Pid = c.Pid
		var exitErr *exec.ExitError
		switch {
		case err == nil, errors.As(err, &exitErr):
		case errors.Is(err, exec.ErrWaitDelay):
			c.waitErr = fmt.Errorf("copying its stdio had not finished %v after it exited (a pipe held open by a process it left behind, or a Stdin reader that never ends?)", strayGrace)
		default:
			c.waitErr = err
		}
		if ps := c.Cmd.ProcessState; ps != nil {
			ws := ps.Sys().(syscall.WaitStatus)
			if ws.Signaled() {
				c.res.Signal = ws.Signal()
				c.res.ExitCode = 128 + int(ws.Signal())
			} else {
				c.res.ExitCode = ws.ExitStatus()
			}
		}
		c.reaped.Store(true)
	})
	return c.res
}

// Wait waits for the process to exit and returns what became of it. It
// fails the test if the timeout killed it, and reports processes it left in
// its process group (unless allowed). Call it from the test goroutine.
func (c *child) Wait() RunResult {
	c.t.Helper()
	res := c.wait()
	if c.timedOut.Load() {
		killGroup(c.Pid)
	} else {
		c.checkStrays()
	}
	res.Stdout, res.Stderr = c.stdout.collect(outputGrace), c.stderr.collect(outputGrace)
	if c.timedOut.Load() {
		c.t.Fatalf("%s timed out after %v; killed its process group\nstdout:\n%s\nstderr:\n%s", c.what, c.timeout, tail(res.Stdout), tail(res.Stderr))
	}
	if c.waitErr != nil {
		c.t.Errorf("%s: %v", c.what, c.waitErr)
	}
	return res
}

// Output returns what has been captured so far, for tests that watch a
// running process.
func (c *child) Output() (stdout, stderr string) {
	return c.stdout.String(), c.stderr.String()
}

// checkStrays treats processes still in the child's process group after it
// exited as leaked, unless they go away within strayGrace.
func (c *child) checkStrays() {
	c.t.Helper()
	deadline := time.Now().Add(strayGrace)
	members := groupMembers(c.Pid)
	for len(members) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		members = groupMembers(c.Pid)
	}
	if len(members) == 0 {
		return
	}
	if c.allowStrays {
		c.t.Logf("%s left processes behind (allowed): %s", c.what, strings.Join(members, ", "))
		return
	}
	killGroup(c.Pid)
	c.t.Errorf("LEAK: %s exited but left processes in its process group (killed now): %s", c.what, strings.Join(members, ", "))
}

// killGroup SIGKILLs a process group and waits (briefly) until none of its
// processes is alive any more.
func killGroup(pgid int) {
	if syscall.Kill(-pgid, syscall.SIGKILL) != nil {
		return
	}
	for deadline := time.Now().Add(strayGrace); len(groupMembers(pgid)) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// groupMembers lists the live (non-zombie) processes of a process group as
// "pid (comm)". Zombies are skipped: they are dead, and this container's
// init may be slow to reap orphans.
func groupMembers(pgid int) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, f, ok := procStat(pid)
		if !ok || len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			out = append(out, fmt.Sprintf("%d (%s)", pid, comm))
		}
	}
	return out
}

// procStat reads /proc/<pid>/stat: the command name, and the fields after
// it (state first, then ppid, pgrp, ...); ok is false if it cannot.
func procStat(pid int) (comm string, fields []string, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", nil, false
	}
	s := string(b)
	// The name is in parentheses and may hold spaces or parentheses.
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", nil, false
	}
	return s[open+1 : end], strings.Fields(s[end+1:]), true
}

// mountsUnder lists the mount points at or below dir in this process's
// mount namespace, deepest first.
func mountsUnder(dir string) []string {
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// detachMountsUnder lazily unmounts whatever is mounted under dir (as rkt's
// gc does after the stage1 gc) and returns what it found.
func detachMountsUnder(dir string) []string {
	mps := mountsUnder(dir)
	for _, mp := range mps {
		unix.Unmount(mp, unix.MNT_DETACH)
	}
	return mps
}

// unescapeMountinfo undoes the octal escapes (\040 for space...) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// capture collects a child's output through a pipe of our own; the output
// so far can be read (String) while the child writes.
type capture struct {
	syncio.Buffer
	w    *os.File
	done chan struct{}
}

// pipe returns the write end to give the child, and starts copying.
func (c *capture) pipe() io.Writer {
	r, w, err := os.Pipe()
	if err != nil {
		// Out of descriptors: let exec copy instead.
		return c
	}
	c.w, c.done = w, make(chan struct{})
	go func() {
		defer close(c.done)
		defer r.Close()
		io.Copy(c, r)
	}()
	return w
}

func (c *capture) closeWriter() {
	if c.w != nil {
		c.w.Close()
	}
}

// collect waits up to grace for the output to end, then returns it.
func (c *capture) collect(grace time.Duration) string {
	if c.done != nil {
		select {
		case <-c.done:
		case <-time.After(grace):
		}
	}
	return c.String()
}

// tail keeps failure messages readable when a VM printed a whole boot log.
func tail(s string) string {
	const max = 4000
	if len(s) <= max {
		return s
	}
	return "[...]\n" + s[len(s)-max:]
}
