package tests

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
	"github.com/creack/pty"

	"github.com/stage1-kvm/stage1-kvm/stage1/syncio"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// TestEnter runs `rkt enter` against one running pod (boots are expensive
// under emulation): each subtest is one enter.
func TestEnter(t *testing.T) {
	s := harness.NewStage0(t)
	app := harness.AppSpec{
		Name: "app",
		Exec: []string{"/bin/sh", "-c", "sleep 300"},
		Env: []types.EnvironmentVariable{
			{Name: "FROM_IMAGE", Value: "image value"},
			{Name: "TRICKY", Value: "a\\b\nc $HOME"},
		},
		Files: map[string]string{"/etc/only-in-app": "app rootfs marker\n"},
	}
	other := harness.AppSpec{Name: "other", Exec: []string{"/bin/sh", "-c", "sleep 300"}}
	p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, app), harness.BuildACI(t, other))
	run := p.Start(t, harness.RunOpts{Net: "none"})
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// SIGTERM makes the run entry point stop the pod in order.
		syscall.Kill(run.Pid, syscall.SIGTERM)
		r := run.Wait()
		if t.Failed() {
			t.Logf("run exited %d\nstderr: %s", r.ExitCode, r.Stderr)
		}
		assertNoLeaks(t, p)
	}
	defer stop()
	p.WaitReady(t, 2*time.Minute)

	enter := func(t *testing.T, o harness.EnterOpts, cmd ...string) harness.RunResult {
		t.Helper()
		if o.App == "" {
			o.App = "app"
		}
		if o.Timeout == 0 {
			o.Timeout = time.Minute
		}
		return p.Enter(t, o, cmd...)
	}

	t.Run("StreamsAndExitCode", func(t *testing.T) {
		r := enter(t, harness.EnterOpts{}, "/bin/sh", "-c", "echo hi; echo oops >&2; printf no-newline; exit 3")
		if r.ExitCode != 3 {
			t.Errorf("exit code %d, want 3\nstderr: %s", r.ExitCode, r.Stderr)
		}
		if r.Stdout != "hi\nno-newline" {
			t.Errorf("stdout %q", r.Stdout)
		}
		if r.Stderr != "oops\n" {
			t.Errorf("stderr %q", r.Stderr)
		}
	})

	t.Run("Stdin", func(t *testing.T) {
		input := strings.Repeat("a line of input\n", 5000)
		r := enter(t, harness.EnterOpts{Stdin: strings.NewReader(input)}, "/bin/sh", "-c", "cat; echo eof")
		if r.ExitCode != 0 || r.Stdout != input+"eof\n" {
			t.Errorf("exit %d, %d bytes of stdout (want %d)\nstderr: %s", r.ExitCode, len(r.Stdout), len(input)+4, r.Stderr)
		}
		// No stdin at all (the harness gives /dev/null): immediate EOF.
		r = enter(t, harness.EnterOpts{}, "cat")
		if r.ExitCode != 0 || r.Stdout != "" {
			t.Errorf("cat without stdin: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
		}
	})

	t.Run("AppEnvironment", func(t *testing.T) {
		r := enter(t, harness.EnterOpts{}, "/bin/sh", "-c", `echo "$FROM_IMAGE|$TRICKY|$AC_APP_NAME"`)
		if want := "image value|a\\b\nc $HOME|app\n"; r.ExitCode != 0 || r.Stdout != want {
			t.Errorf("exit %d, stdout %q, want %q\nstderr: %s", r.ExitCode, r.Stdout, want, r.Stderr)
		}
		// A command found through the app's PATH, not an absolute path.
		r = enter(t, harness.EnterOpts{}, "env")
		if !containsLine(r.Stdout, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") {
			t.Errorf("env: %q", r.Stdout)
		}
	})

	t.Run("AppRootfs", func(t *testing.T) {
		r := enter(t, harness.EnterOpts{}, "/bin/sh", "-c", "cat /etc/only-in-app; pwd; id -u; test -d /proc/self && test -c /dev/null && echo api-fs")
		if want := "app rootfs marker\n/\n0\napi-fs\n"; r.ExitCode != 0 || r.Stdout != want {
			t.Errorf("exit %d, stdout %q, want %q\nstderr: %s", r.ExitCode, r.Stdout, want, r.Stderr)
		}
		// The other app has its own rootfs, without that file.
		r = enter(t, harness.EnterOpts{App: "other"}, "/bin/sh", "-c", "test -e /etc/only-in-app; echo $?")
		if r.Stdout != "1\n" {
			t.Errorf("in app other: %q %q", r.Stdout, r.Stderr)
		}
		// What enter writes is in the app's rootfs on the host (9p).
		r = enter(t, harness.EnterOpts{}, "/bin/sh", "-c", "echo written > /tmp/by-enter")
		b, err := os.ReadFile(filepath.Join(p.Dir, "stage1/rootfs/opt/stage2/app/rootfs/tmp/by-enter"))
		if r.ExitCode != 0 || err != nil || string(b) != "written\n" {
			t.Errorf("write from enter: exit %d, %q, %v", r.ExitCode, b, err)
		}
	})

	t.Run("UnknownApp", func(t *testing.T) {
		// harness.Enter checks the app like rkt; call the entry point
		// the way it does, with an app the pod lacks.
		r := enterRaw(t, p, "nope", nil, "/bin/true")
		if r.code == 0 || !strings.Contains(r.stderr, `no app named "nope" in this pod`) {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("MissingCommand", func(t *testing.T) {
		r := enter(t, harness.EnterOpts{}, "no-such-command", "arg")
		if r.ExitCode != 127 || !strings.Contains(r.Stderr, "no-such-command: not found") {
			t.Errorf("exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
		r = enter(t, harness.EnterOpts{}, "/etc/only-in-app")
		if r.ExitCode != 126 || !strings.Contains(r.Stderr, "permission denied") {
			t.Errorf("not executable: exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
	})

	t.Run("KilledBySignal", func(t *testing.T) {
		r := enter(t, harness.EnterOpts{}, "/bin/sh", "-c", "kill -TERM $$")
		if r.ExitCode != 128+15 {
			t.Errorf("exit %d, want %d\nstderr: %s", r.ExitCode, 128+15, r.Stderr)
		}
	})

	t.Run("TTY", func(t *testing.T) {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 33, Cols: 101}); err != nil {
			t.Fatal(err)
		}
		c := enterCmd(t, p, "app", []string{"TERM=xterm-enter-test"}, "/bin/sh", "-c",
			`tty; stty size; echo "term=$TERM"; trap 'stty size; exit 7' WINCH; echo waiting; while :; do sleep 0.1; done`)
		c.Stdin, c.Stdout, c.Stderr = tty, tty, tty
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		tty.Close()
		out := &syncio.Buffer{}
		copied := make(chan struct{})
		go func() { io.Copy(out, ptmx); close(copied) }()
		waitFor(t, out, "waiting", time.Minute)
		// A resize of enter's terminal reaches the command's.
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 44, Cols: 120}); err != nil {
			t.Fatal(err)
		}
		code := waitCmd(t, c, time.Minute)
		<-copied
		got := out.String()
		if code != 7 {
			t.Errorf("exit %d, want 7\noutput: %q", code, got)
		}
		if !regexp.MustCompile(`(?m)^/dev/pts/\d+\r$`).MatchString(got) {
			t.Errorf("tty did not print a terminal: %q", got)
		}
		for _, want := range []string{"33 101\r\n", "term=xterm-enter-test\r\n", "44 120\r\n"} {
			if !strings.Contains(got, want) {
				t.Errorf("output lacks %q: %q", want, got)
			}
		}
	})

	t.Run("TTYInterrupt", func(t *testing.T) {
		// Raw mode: ^C is a byte for the command's terminal, which
		// turns it into SIGINT for the command; enter's terminal is
		// restored afterwards.
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80})
		before := sttySettings(t, tty)
		c := enterCmd(t, p, "app", nil, "/bin/sh", "-c", `trap 'echo got-int; exit 5' INT; echo waiting; while :; do sleep 0.1; done`)
		c.Stdin, c.Stdout, c.Stderr = tty, tty, tty
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		out := &syncio.Buffer{}
		copied := make(chan struct{})
		go func() { io.Copy(out, ptmx); close(copied) }()
		waitFor(t, out, "waiting", time.Minute)
		ptmx.Write([]byte{3})
		code := waitCmd(t, c, time.Minute)
		if code != 5 || !strings.Contains(out.String(), "got-int") {
			t.Errorf("exit %d, output %q", code, out.String())
		}
		if after := sttySettings(t, tty); after != before {
			t.Errorf("terminal not restored:\nbefore %s\nafter  %s", before, after)
		}
		tty.Close()
		<-copied
	})

	t.Run("PodStopsWhileEntered", func(t *testing.T) {
		// A command still running when the pod stops (this one ignores
		// SIGTERM) is hung up; enter ends instead of waiting for it.
		c := enterCmd(t, p, "app", nil, "/bin/sh", "-c", `trap '' TERM; echo started; while :; do sleep 0.1; done`)
		out := &syncio.Buffer{}
		c.Stdout, c.Stderr = out, out
		// Stdin that stays open; a file, so Wait does not wait for it.
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pw.Close()
		c.Stdin = pr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		pr.Close()
		waitFor(t, out, "started", time.Minute)
		stop()
		code := waitCmd(t, c, time.Minute)
		if code == 0 {
			t.Errorf("enter exited 0 although its command was cut; output %q", out.String())
		}
		t.Logf("enter exited %d, output %q", code, out.String())
	})

	t.Run("PodNotRunning", func(t *testing.T) {
		// After the pod stopped, enter fails clearly.
		stop()
		r := enterRaw(t, p, "app", nil, "/bin/true")
		if r.code != 254 || !strings.Contains(r.stderr, "pod is not running") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// enterCmd is the enter entry point as harness.Enter runs it (tree store
// copy, cwd the pod dir, --pid, --appname, --), for what the harness cannot
// do: an app the pod lacks, a terminal.
func enterCmd(t *testing.T, p *harness.Pod, app string, env []string, cmd ...string) *exec.Cmd {
	t.Helper()
	treeID, err := os.ReadFile(filepath.Join(p.Dir, "stage1TreeStoreID"))
	if err != nil {
		t.Fatal(err)
	}
	pid := 1
	if n, err := p.PID(); err == nil {
		pid = n
	}
	bin := filepath.Join(p.S.Dir, "cas", "tree", string(treeID), "rootfs", "enter")
	args := append([]string{bin, "--pid=" + strconv.Itoa(pid), "--appname=" + app, "--"}, cmd...)
	return &exec.Cmd{Path: bin, Args: args, Dir: p.Dir, Env: append(os.Environ(), env...)}
}

type rawResult struct {
	code           int
	stdout, stderr string
}

func enterRaw(t *testing.T, p *harness.Pod, app string, env []string, cmd ...string) rawResult {
	t.Helper()
	c := enterCmd(t, p, app, env, cmd...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	code := waitCmd(t, c, time.Minute)
	return rawResult{code, out.String(), errb.String()}
}

// waitCmd waits for c, killing it after timeout, and returns its exit code
// (128+N for signal N).
func waitCmd(t *testing.T, c *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		c.Process.Kill()
		<-done
		t.Fatalf("%v did not end within %v", c.Args, timeout)
	}
	ws := c.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func waitFor(t *testing.T, out *syncio.Buffer, s string, timeout time.Duration) {
	t.Helper()
	if !waitUntil(timeout, 20*time.Millisecond, func() bool { return strings.Contains(out.String(), s) }) {
		t.Fatalf("no %q within %v; output: %q", s, timeout, out.String())
	}
}

// sttySettings reads a terminal's settings as stty prints them.
func sttySettings(t *testing.T, tty *os.File) string {
	t.Helper()
	c := exec.Command("stty", "-g")
	c.Stdin = tty
	b, err := c.Output()
	if err != nil {
		t.Fatalf("stty: %v", err)
	}
	return strings.TrimSpace(string(b))
}
