package guest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/agentproto"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/syncio"
)

// fakePod makes a pod mount with one app, "app": a busybox rootfs and its
// env file. It needs root (the agent chroots) and a static busybox.
func fakePod(t *testing.T) (pod, rootfs string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chroot")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs a static /bin/busybox")
	}
	pod = t.TempDir()
	rootfs = filepath.Join(pod, "opt/stage2/app/rootfs")
	for _, d := range []string{"bin", "dev", "proc", "etc", "empty-dir"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A shell gives background commands /dev/null as stdin.
	if err := unix.Mknod(filepath.Join(rootfs, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "echo", "tty", "stty", "pwd", "kill", "sleep", "test", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	// An absolute link resolves inside the rootfs, not the guest's root.
	os.MkdirAll(filepath.Join(rootfs, "usr/bin"), 0o755)
	if err := os.Symlink("/bin/busybox", filepath.Join(rootfs, "usr/bin/printf")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(rootfs, "etc/only-in-app"), []byte("app file\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "bin/not-exec"), []byte("#!/bin/sh\n"), 0o644)
	env, _ := contract.EncodeEnv([]types.EnvironmentVariable{
		{Name: "PATH", Value: "/usr/bin:/bin"},
		{Name: "FOO", Value: "line1\nline2 \\ $HOME"},
	})
	if err := os.MkdirAll(filepath.Join(pod, contract.ShareConfig, contract.EnvDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pod, contract.ShareConfig, contract.EnvDir, "app"), env, 0o600); err != nil {
		t.Fatal(err)
	}
	return pod, rootfs
}

type execResult struct {
	code           int
	stdout, stderr string
	err            error
}

func runExec(t *testing.T, h *AgentHandler, req agentproto.ExecRequest, stdin string, resize <-chan agentproto.Size) execResult {
	t.Helper()
	a, b := net.Pipe()
	go agentproto.ServeConn(b, h)
	defer a.Close()
	var out, errb bytes.Buffer
	var in *strings.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	done := make(chan execResult, 1)
	go func() {
		var r execResult
		if in != nil {
			r.code, r.err = agentproto.Exec(a, req, in, &out, &errb, resize)
		} else {
			r.code, r.err = agentproto.Exec(a, req, nil, &out, &errb, resize)
		}
		done <- r
	}()
	select {
	case r := <-done:
		r.stdout, r.stderr = out.String(), errb.String()
		return r
	case <-time.After(20 * time.Second):
		t.Fatalf("exec %q did not end", req.Argv)
		return execResult{}
	}
}

func TestAgentExecPipes(t *testing.T) {
	pod, _ := fakePod(t)
	h := NewAgentHandler(pod)
	sh := func(script string) agentproto.ExecRequest {
		return agentproto.ExecRequest{App: "app", Argv: []string{"sh", "-c", script}}
	}

	r := runExec(t, h, sh(`echo out; echo err >&2; pwd; cat /etc/only-in-app; echo "$FOO"; exit 3`), "", nil)
	if r.err != nil || r.code != 3 {
		t.Fatalf("exit %d, %v", r.code, r.err)
	}
	if want := "out\n/\napp file\nline1\nline2 \\ $HOME\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if r.stderr != "err\n" {
		t.Errorf("stderr %q", r.stderr)
	}

	input := strings.Repeat("0123456789abcdef\n", 20000)
	if r := runExec(t, h, agentproto.ExecRequest{App: "app", Argv: []string{"cat"}}, input, nil); r.err != nil || r.code != 0 || r.stdout != input {
		t.Errorf("cat: exit %d, %v, %d bytes of %d", r.code, r.err, len(r.stdout), len(input))
	}
	if r := runExec(t, h, agentproto.ExecRequest{App: "app", Argv: []string{"printf", "%s-%s", "via", "link"}}, "", nil); r.stdout != "via-link" {
		t.Errorf("absolute symlink: %+v", r)
	}
	if r := runExec(t, h, sh(`kill -KILL $$`), "", nil); r.err != nil || r.code != 128+9 {
		t.Errorf("killed: exit %d, %v", r.code, r.err)
	}
	// Output of a background process still running at the end does not
	// keep the request open.
	start := time.Now()
	if r := runExec(t, h, sh(`sleep 4 & echo started`), "", nil); r.stdout != "started\n" || r.stderr != "" || time.Since(start) > 3*time.Second {
		t.Errorf("background process: %+v after %v", r, time.Since(start))
	}
}

func TestAgentExecErrors(t *testing.T) {
	pod, _ := fakePod(t)
	h := NewAgentHandler(pod)
	for _, c := range []struct {
		app    string
		argv   []string
		msg    string
		status int
	}{
		{"nope", []string{"sh"}, `no app named "nope" in this pod`, 0},
		{"../app", []string{"sh"}, `no app named "../app" in this pod`, 0},
		{"app", []string{"no-such-cmd"}, "exec: no-such-cmd: not found", 127},
		{"app", []string{"/bin/no-such-cmd"}, "exec: /bin/no-such-cmd: not found", 127},
		{"app", []string{"not-exec"}, "exec: not-exec: permission denied", 126},
		{"app", []string{"/empty-dir"}, "exec: /empty-dir: is a directory", 126},
		// Found on the guest's PATH, not in the app: not found.
		{"app", []string{"unshare"}, "exec: unshare: not found", 127},
	} {
		r := runExec(t, h, agentproto.ExecRequest{App: c.app, Argv: c.argv}, "", nil)
		var re *agentproto.RemoteError
		if !errors.As(r.err, &re) || re.Msg != c.msg || re.Status != c.status {
			t.Errorf("%s %q: %#v, want %q status %d", c.app, c.argv, r.err, c.msg, c.status)
		}
	}
	os.Remove(filepath.Join(pod, contract.ShareConfig, contract.EnvDir, "app"))
	r := runExec(t, h, agentproto.ExecRequest{App: "app", Argv: []string{"sh"}}, "", nil)
	if r.err == nil || !strings.Contains(r.err.Error(), "no app named") {
		t.Errorf("app without env file: %v", r.err)
	}
}

// appProcess starts a process the way systemd runs an app with
// RootDirectory=: in a mount namespace of its own where /dev and /proc are
// mounted in the rootfs, chrooted into it.
func appProcess(t *testing.T, rootfs string) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare")
	}
	script := fmt.Sprintf(`mount --rbind /dev %[1]s/dev && mount -t proc proc %[1]s/proc && exec chroot %[1]s /bin/sleep 60`, rootfs)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid)); string(b) == "sleep\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the app process did not start")
		}
	}
}

func TestAgentExecTTY(t *testing.T) {
	pod, rootfs := fakePod(t)
	h := NewAgentHandler(pod)
	req := agentproto.ExecRequest{App: "app", TTY: true, Size: agentproto.Size{Rows: 30, Cols: 100}, Term: "xterm-test",
		Argv: []string{"sh", "-c", `stty size; echo "term=$TERM"; test -t 0 && test -t 1 && test -t 2 && echo all-tty`}}
	r := runExec(t, h, req, "", nil)
	if r.err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v", r.code, r.err)
	}
	if want := "30 100\r\nterm=xterm-test\r\nall-tty\r\n"; r.stdout != want || r.stderr != "" {
		t.Errorf("stdout %q (want %q), stderr %q", r.stdout, want, r.stderr)
	}

	// A background process keeping the terminal open does not keep the
	// request open.
	start := time.Now()
	req.Argv = []string{"sh", "-c", `trap "" HUP; sleep 4 & echo started`}
	if r := runExec(t, h, req, "", nil); r.stdout != "started\r\n" || time.Since(start) > 3*time.Second {
		t.Errorf("background process: %+v after %v", r, time.Since(start))
	}

	// With the app running, the command sees the app's /dev and /proc.
	appProcess(t, rootfs)
	req.Argv = []string{"sh", "-c", `tty; test -d /proc/self && echo has-proc`}
	r = runExec(t, h, req, "", nil)
	if !regexp.MustCompile(`^/dev/pts/\d+\r\nhas-proc\r\n$`).MatchString(r.stdout) {
		t.Errorf("in the app's view: %+v", r)
	}

	// Resizes reach the command as SIGWINCH and a new size.
	resize := make(chan agentproto.Size, 1)
	req.Argv = []string{"sh", "-c", `trap 'stty size; exit 0' WINCH; echo ready; while :; do sleep 0.05; done`}
	a, b := net.Pipe()
	go agentproto.ServeConn(b, h)
	defer a.Close()
	out := &syncio.Buffer{}
	done := make(chan int, 1)
	go func() {
		code, _ := agentproto.Exec(a, req, blockingReader{}, out, nil, resize)
		done <- code
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "ready"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no ready: %q", out.String())
		}
	}
	resize <- agentproto.Size{Rows: 40, Cols: 120}
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "40 120") {
			t.Errorf("after resize: exit %d, %q", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("resize not seen: %q", out.String())
	}
}

func TestAgentHangup(t *testing.T) {
	pod, _ := fakePod(t)
	h := NewAgentHandler(pod)
	killLeftovers(t, h)
	a, b := net.Pipe()
	go agentproto.ServeConn(b, h)
	out := &syncio.Buffer{}
	done := make(chan error, 1)
	go func() {
		_, err := agentproto.Exec(a, agentproto.ExecRequest{App: "app", Argv: []string{"sh", "-c", `trap 'echo hup >/hup; exit 1' HUP; echo ready; while :; do sleep 0.05; done`}}, blockingReader{}, out, nil, nil)
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "ready"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no ready: %q", out.String())
		}
	}
	a.Close() // the client goes away
	<-done
	marker := filepath.Join(pod, "opt/stage2/app/rootfs/hup")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command was not hung up when its client left")
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		h.mu.Lock()
		n := len(h.running)
		h.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hung-up command is still tracked")
		}
	}
}

type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { select {} }

// killLeftovers fails the test, at its end, for every command h still runs,
// and kills its process group: nothing a test starts may outlive it.
func killLeftovers(t *testing.T, h *AgentHandler) {
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for p := range h.running {
			// Reaped: it has ended; the map forgets it a moment later.
			if p.ended() {
				continue
			}
			if pid := p.cmd.Process.Pid; pid > 0 {
				t.Errorf("LEAK: command %v (pid %d) still runs at the end of the test; killed", p.cmd.Args, pid)
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
}

// At the power-off the agent hangs up enter's commands and kills, after
// shutdownGrace, one that ignores the hang-up, so it cannot hold the
// power-off; the client still gets the command's end.
func TestAgentStopEndsCommands(t *testing.T) {
	pod, _ := fakePod(t)
	h := NewAgentHandler(pod)
	killLeftovers(t, h)
	guestEnd, hostEnd := net.Pipe()
	a, err := serveAgent(guestEnd, h)
	if err != nil {
		t.Fatal(err)
	}
	client, err := yamux.Client(hostEnd, agentproto.SessionConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	type result struct {
		code int
		err  error
	}
	start := func(script string) (*syncio.Buffer, chan result) {
		stream, err := client.Open()
		if err != nil {
			t.Fatal(err)
		}
		out, done := &syncio.Buffer{}, make(chan result, 1)
		go func() {
			code, err := agentproto.Exec(stream, agentproto.ExecRequest{App: "app", Argv: []string{"sh", "-c", script}}, blockingReader{}, out, nil, nil)
			done <- result{code, err}
		}()
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "ready"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no ready: %q", out.String())
			}
		}
		return out, done
	}
	_, polite := start(`trap 'exit 3' HUP; echo ready; while :; do sleep 0.05; done`)
	_, stubborn := start(`trap '' HUP TERM; echo ready; while :; do sleep 0.05; done`)

	h.mu.Lock()
	var procs []*agentProcess
	for p := range h.running {
		procs = append(procs, p)
	}
	h.mu.Unlock()
	if len(procs) != 2 {
		t.Fatalf("%d commands run, want 2", len(procs))
	}

	began := time.Now()
	a.stop()
	took := time.Since(began)
	if took < shutdownGrace || took > shutdownGrace+killGrace+time.Second {
		t.Errorf("stop took %v, want about shutdownGrace (%v): it waits for the stubborn command, then kills it", took, shutdownGrace)
	}
	for name, c := range map[string]chan result{"polite": polite, "stubborn": stubborn} {
		select {
		case r := <-c:
			if name == "polite" && (r.err != nil || r.code != 3) {
				t.Errorf("%s: code %d, %v; want 3 from its HUP trap", name, r.code, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: its client never heard the end", name)
		}
	}
	// Each has been reaped by the time its end went out (the running
	// set itself forgets a command a moment after that).
	for _, p := range procs {
		if !p.ended() {
			t.Errorf("command %v still runs after stop", p.cmd.Args)
		}
	}
}
