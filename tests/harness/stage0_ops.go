package harness

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// defaultOpTimeout bounds gc, stop and enter when their options give none.
const defaultOpTimeout = time.Minute

// pollInterval is how often rkt re-reads pid files and the supervisor
// status while it waits for them.
const pollInterval = 100 * time.Millisecond

// GCOpts are the `rkt gc` flags that reach the stage1, and test controls.
type GCOpts struct {
	Debug bool // global --debug
	// LocalConfig is --local-config (DefaultLocalConfig if empty); rkt
	// passes it to gc only for interface version 5 and later.
	LocalConfig string
	Env         []string // added to the caller's environment
	Timeout     time.Duration
	// Keep leaves the pod directory in pods/exited-garbage instead of
	// deleting it as rkt does, so a test can inspect it or gc it again.
	Keep bool
}

// GC collects an exited pod as `rkt gc --grace-period=0` does: the pod
// moves from pods/run to pods/exited-garbage, stage0 locks it, and the gc
// entry point runs as a child (cwd the pod dir, stdout /dev/null, stderr
// captured and returned) with `[--debug] [--local-config <dir>] <uuid>`.
// Then, like rkt, it detaches whatever is still mounted under the pod (here
// reported as a leak, since our gc should have released it) and deletes the
// pod. It skips the test if the stage1 declares no gc entry point.
func (s *Stage0) GC(t testing.TB, p *Pod, opts ...GCOpts) (exitCode int, stderr string) {
	t.Helper()
	var o GCOpts
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		t.Fatal("GC takes at most one GCOpts")
	}
	if p.S != s {
		t.Fatalf("pod %s belongs to another Stage0", p.UUID)
	}
	m, err := p.stage1Manifest()
	if err != nil {
		t.Fatalf("rkt gc: %v", err)
	}
	ep, ok := entryPoint(m, "gc")
	if !ok {
		t.Skipf("stage1 declares no gc entry point (%sgc)", annStage1)
	}
	version, err := interfaceVersion(m)
	if err != nil {
		t.Fatalf("rkt gc: %v", err)
	}
	switch p.state {
	case "run":
		if p.LockHeld() {
			t.Fatalf("rkt gc: pod %s is still running; gc only collects exited pods", p.UUID)
		}
		if err := p.move("run", "exited-garbage"); err != nil {
			t.Fatalf("rkt gc: %v", err)
		}
	case "exited-garbage": // kept by an earlier GC
	default:
		t.Fatalf("rkt gc: pod %s was never run (state %q); rkt would just delete it", p.UUID, p.state)
	}
	lock, err := lockDir(p.Dir, true)
	if err != nil {
		t.Fatalf("rkt gc: unable to lock pod %s: %v", p.UUID, err)
	}
	defer unlock(lock)
	if p.overlay {
		if err := p.mountStage1Overlay(); err != nil {
			t.Fatalf("rkt gc: %v", err)
		}
	}

	args := []string{filepath.Join(p.Dir, "stage1", "rootfs", ep)}
	if o.Debug {
		args = append(args, "--debug")
	}
	localConfig := o.LocalConfig
	if localConfig == "" {
		localConfig = DefaultLocalConfig
	}
	if version >= 5 {
		args = append(args, "--local-config", localConfig)
	}
	args = append(args, p.UUID)
	cmd := &exec.Cmd{Path: args[0], Args: args, Dir: p.Dir, Env: append(os.Environ(), o.Env...)}
	c := newChild(t, "pod "+p.UUID+" gc", cmd, orDefault(o.Timeout), false)
	cmd.Stderr = c.errOr(nil) // stdout stays nil: /dev/null
	if err := c.start(); err != nil {
		t.Fatalf("rkt gc: %v", err)
	}
	res := c.Wait()

	p.S.mu.Lock()
	p.unmountOverlays()
	p.S.mu.Unlock()
	if leaked := detachMountsUnder(p.Dir); len(leaked) > 0 {
		t.Errorf("LEAK: gc of pod %s left mounts behind (rkt detaches them): %s", p.UUID, strings.Join(leaked, ", "))
	}
	if !o.Keep {
		if err := os.RemoveAll(p.Dir); err != nil {
			t.Errorf("rkt gc: removing pod %s: %v", p.UUID, err)
		}
		p.state = ""
	}
	return res.ExitCode, res.Stderr
}

// StopOpts are the `rkt stop` flag and test controls.
type StopOpts struct {
	Force          bool // --force
	Stdout, Stderr io.Writer
	Timeout        time.Duration
}

// Stop runs the stop entry point as `rkt stop` does: a child with
// `[--force] <uuid>`, cwd the pod dir, output passed through (captured if
// nil). It returns when stop returns; use Running.Wait to see the pod end.
func (p *Pod) Stop(t testing.TB, o StopOpts) RunResult {
	t.Helper()
	m, err := p.stage1Manifest()
	if err != nil {
		t.Fatalf("rkt stop: %v", err)
	}
	ep, ok := entryPoint(m, "stop")
	if !ok {
		t.Fatalf("rkt stop: not implemented for pod's stage1 (no %sstop)", annStage1)
	}
	if p.state != "run" || !p.LockHeld() {
		t.Fatalf("rkt stop: pod %s is not running", p.UUID)
	}
	args := []string{filepath.Join(p.Dir, "stage1", "rootfs", ep)}
	if o.Force {
		args = append(args, "--force")
	}
	args = append(args, p.UUID)
	cmd := &exec.Cmd{Path: args[0], Args: args, Dir: p.Dir}
	c := newChild(t, "pod "+p.UUID+" stop", cmd, orDefault(o.Timeout), false)
	cmd.Stdout, cmd.Stderr = c.outOr(o.Stdout), c.errOr(o.Stderr)
	if err := c.start(); err != nil {
		t.Fatalf("rkt stop: %v", err)
	}
	return c.Wait()
}

// EnterOpts are the `rkt enter` flag and how the test connects to it.
type EnterOpts struct {
	App            string // --app; may be empty if the pod has one app
	Stdin          io.Reader
	Stdout, Stderr io.Writer // nil: captured
	Env            []string
	Timeout        time.Duration
}

// Enter runs a command in an app of a running pod as `rkt enter` does: it
// waits for the pod's pid (or ppid) file like rkt, then execs the enter
// entry point from the tree store copy of the stage1, with cwd the pod dir,
// no lock descriptor, and `--pid=N --appname=A -- cmd...` (cmd defaults to
// /bin/bash). Its exit code is the result's.
func (p *Pod) Enter(t testing.TB, o EnterOpts, cmd ...string) RunResult {
	t.Helper()
	m, err := p.stage1Manifest()
	if err != nil {
		t.Fatalf("rkt enter: %v", err)
	}
	ep, ok := entryPoint(m, "enter")
	if !ok {
		t.Fatalf("rkt enter: no %senter entry point", annStage1)
	}
	if p.state != "run" || !p.LockHeld() {
		t.Fatalf("rkt enter: pod %s isn't currently running", p.UUID)
	}
	app := o.App
	if app == "" {
		if len(p.Apps) != 1 {
			t.Fatalf("rkt enter: pod %s has %d apps: specify one", p.UUID, len(p.Apps))
		}
		app = p.Apps[0]
	}
	found := false
	for _, a := range p.Apps {
		found = found || a == app
	}
	if !found {
		t.Fatalf("rkt enter: no app %q in pod %s", app, p.UUID)
	}
	timeout := orDefault(o.Timeout)
	pid, err := p.waitPID(timeout)
	if err != nil {
		t.Fatalf("rkt enter: cannot determine the pid of pod %s: %v", p.UUID, err)
	}
	treeID, err := p.stage1TreeID()
	if err != nil {
		t.Fatalf("rkt enter: %v", err)
	}
	if len(cmd) == 0 {
		cmd = []string{"/bin/bash"}
	}
	args := []string{filepath.Join(p.S.treeRootfs(treeID), ep),
		"--pid=" + strconv.Itoa(pid), "--appname=" + app, "--"}
	args = append(args, cmd...)
	c := newChild(t, "pod "+p.UUID+" enter", &exec.Cmd{Path: args[0], Args: args, Dir: p.Dir, Env: append(os.Environ(), o.Env...)}, timeout, false)
	c.Cmd.Stdin = o.Stdin
	c.Cmd.Stdout, c.Cmd.Stderr = c.outOr(o.Stdout), c.errOr(o.Stderr)
	if err := c.start(); err != nil {
		t.Fatalf("rkt enter: error execing enter: %v", err)
	}
	return c.Wait()
}

// PID is the PID rkt hands to enter: the content of <pod>/pid, or else the
// only child of the process named in <pod>/ppid. It fails while neither is
// there (or ppid has no child yet).
func (p *Pod) PID() (int, error) {
	pid, err := readPIDFile(filepath.Join(p.Dir, "pid"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return pid, err
	}
	ppid, err := readPIDFile(filepath.Join(p.Dir, "ppid"))
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", ppid, ppid))
	if err != nil {
		return 0, fmt.Errorf("children of ppid %d: %w", ppid, err)
	}
	kids := strings.Fields(string(b))
	switch len(kids) {
	case 0:
		return 0, errChildNotReady
	case 1:
		return strconv.Atoi(kids[0])
	}
	return 0, fmt.Errorf("ppid %d has %d children, not exactly one", ppid, len(kids))
}

var errChildNotReady = errors.New("the ppid process has no child yet")

func readPIDFile(p string) (int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	return n, nil
}

// waitPID polls for the pod's PID while the pod runs, as rkt does: the
// stage1 writes its pid file some time after it starts.
func (p *Pod) waitPID(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		pid, err := p.PID()
		if err == nil {
			return pid, nil
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errChildNotReady) {
			return 0, err
		}
		if !p.LockHeld() {
			return 0, errors.New("the pod exited before writing its pid or ppid file")
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no pid or ppid file after %v", timeout)
		}
		time.Sleep(pollInterval)
	}
}

// WaitReady returns once the pod is ready, as `rkt status --wait-ready`
// decides it: stage1/rootfs/rkt/supervisor-status is a symlink to "ready".
// It fails the test if the pod exits or the timeout passes first.
func (p *Pod) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	link := filepath.Join(p.Dir, "stage1", "rootfs", "rkt", "supervisor-status")
	deadline := time.Now().Add(timeout)
	for {
		if target, err := os.Readlink(link); err == nil && target == "ready" {
			return
		}
		if !p.LockHeld() {
			t.Fatalf("pod %s exited before it was ready", p.UUID)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not ready after %v (%s is not a symlink to \"ready\")", p.UUID, timeout, link)
		}
		time.Sleep(pollInterval)
	}
}

func orDefault(d time.Duration) time.Duration {
	if d == 0 {
		return defaultOpTimeout
	}
	return d
}
