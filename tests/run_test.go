package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
	"github.com/creack/pty"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

func TestRunExitCodes(t *testing.T) {
	for _, code := range []int{0, 1, 42, 255} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			p, r := runPod(t, harness.RunOpts{}, sh("app", fmt.Sprintf("echo hello; exit %d", code)))
			if r.ExitCode != code {
				t.Fatalf("run exited %d, want %d\nstderr: %s", r.ExitCode, code, r.Stderr)
			}
			if st, ok := p.AppStatus("app"); !ok || st != code {
				t.Errorf("rkt/status/app = %d (present %v), want %d", st, ok, code)
			}
			if r.Stdout != "hello\n" {
				t.Errorf("stdout %q, want %q", r.Stdout, "hello\n")
			}
		})
	}
}

func TestRunKilledBySignal(t *testing.T) {
	// rkt records systemd's ExecMainStatus: the signal number.
	p, r := runPod(t, harness.RunOpts{}, sh("app", "kill -KILL $$"))
	if r.ExitCode != 9 {
		t.Fatalf("run exited %d, want 9 (SIGKILL)\nstderr: %s", r.ExitCode, r.Stderr)
	}
	if st, _ := p.AppStatus("app"); st != 9 {
		t.Errorf("status %d, want 9", st)
	}
}

func TestMultiAppFirstFailureStopsPod(t *testing.T) {
	p, r := runPod(t, harness.RunOpts{},
		sh("fails", "sleep 1; exit 3"),
		sh("sleeps", "trap 'exit 7' TERM; sleep 100 & wait"))
	if r.ExitCode != 3 {
		t.Fatalf("run exited %d, want 3\nstderr: %s", r.ExitCode, r.Stderr)
	}
	if r.Duration > 60*time.Second {
		t.Errorf("the pod was not stopped by the failure: took %v", r.Duration)
	}
	if st, _ := p.AppStatus("fails"); st != 3 {
		t.Errorf("status of fails = %d", st)
	}
	// The other app got SIGTERM and its trap ran.
	if st, ok := p.AppStatus("sleeps"); !ok || st != 7 {
		t.Errorf("status of sleeps = %d (present %v), want 7 from its TERM trap", st, ok)
	}
}

func TestMultiAppAllSucceed(t *testing.T) {
	p, r := runPod(t, harness.RunOpts{}, sh("a", "exit 0"), sh("b", "sleep 1; exit 0"))
	if r.ExitCode != 0 {
		t.Fatalf("run exited %d\nstderr: %s", r.ExitCode, r.Stderr)
	}
	for _, a := range []string{"a", "b"} {
		if st, ok := p.AppStatus(a); !ok || st != 0 {
			t.Errorf("status of %s = %d (present %v)", a, st, ok)
		}
	}
}

func TestStdoutStderrSeparate(t *testing.T) {
	_, r := runPod(t, harness.RunOpts{}, sh("app", "echo to-stdout; echo to-stderr >&2; printf no-newline"))
	if r.Stdout != "to-stdout\nno-newline" {
		t.Errorf("stdout = %q", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "to-stderr\n") || strings.Contains(r.Stderr, "to-stdout") {
		t.Errorf("stderr = %q", r.Stderr)
	}
	for _, noise := range []string{"systemd", "Linux version", "reboot"} {
		if strings.Contains(r.Stdout+r.Stderr, noise) {
			t.Errorf("boot noise %q in output without --debug:\nstdout %q\nstderr %q", noise, r.Stdout, r.Stderr)
		}
	}
}

func TestDebugShowsBootLog(t *testing.T) {
	_, r := runPod(t, harness.RunOpts{Debug: true}, sh("app", "echo hi"))
	if r.ExitCode != 0 || r.Stdout != "hi\n" {
		t.Fatalf("exit %d, stdout %q\nstderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	for _, want := range []string{"Linux version", "stage1: VM: "} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("--debug stderr lacks %q", want)
		}
	}
}

func TestAppIdentityAndEnvironment(t *testing.T) {
	spec := harness.AppSpec{
		Name: "app",
		Exec: []string{"/bin/sh", "-c", `echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) pwd=$(pwd)"; echo "name=$AC_APP_NAME path=$PATH foo=$FOO tricky=$TRICKY"`},
		User: "user", Group: "users",
		SupplementaryGIDs: []int{4242},
		WorkingDirectory:  "/tmp",
		Env: []types.EnvironmentVariable{
			{Name: "FOO", Value: "bar baz"},
			{Name: "TRICKY", Value: `50% "q" $HOME \n`},
		},
	}
	_, r := runPod(t, harness.RunOpts{}, spec)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	want := "uid=1000 gid=100 groups=100 4242 pwd=/tmp\n" +
		`name=app path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin foo=bar baz tricky=50% "q" $HOME \n` + "\n"
	if r.Stdout != want {
		t.Errorf("stdout:\n%q\nwant:\n%q", r.Stdout, want)
	}
}

func TestEventHandlers(t *testing.T) {
	spec := sh("app", "echo main >> /tmp/order")
	spec.EventHandlers = []types.EventHandler{
		{Name: "pre-start", Exec: []string{"/bin/sh", "-c", "echo pre-start >> /tmp/order"}},
		{Name: "post-stop", Exec: []string{"/bin/sh", "-c", "echo post-stop >> /tmp/order"}},
	}
	p, r := runPod(t, harness.RunOpts{}, spec)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	// The app rootfs is the host directory stage0 prepared: its writes are
	// on the host.
	b, err := os.ReadFile(filepath.Join(p.Dir, "stage1/rootfs/opt/stage2/app/rootfs/tmp/order"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "pre-start\nmain\npost-stop\n" {
		t.Errorf("handler order %q", b)
	}
}

// TestEndsAtOnce: once every app has ended, the pod ends without a guest
// shutdown, and nothing the user keeps is lost on the way: the apps'
// statuses, their output and their post-stop handlers' output, the
// journal, and files they wrote through a shared mapping and the page
// cache.
func TestEndsAtOnce(t *testing.T) {
	first := sh("first", "echo first-out; echo first-err >&2")
	first.EventHandlers = []types.EventHandler{
		{Name: "post-stop", Exec: []string{"/bin/sh", "-c", "echo post-stop-out"}},
	}
	// The second app outlives the first, writes a file both ways and
	// fails: the last app's failure leaves nothing to stop either.
	probe := buildFileProbe(t)
	second := sh("second", "sleep 1; head -c 65536 /dev/zero | tr '\\0' x > /tmp/cached; "+
		probe+" mapfill /tmp/mapped; echo second-out; echo journal-end-marker; exit 3")
	second.HostBinaries = []string{probe}
	p, r := runPod(t, harness.RunOpts{Debug: true}, first, second)
	if r.ExitCode != 3 {
		t.Fatalf("exit %d, want the second app's 3: %s", r.ExitCode, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "every app has ended: stopping the VM") {
		t.Errorf("the pod did not end at once:\n%s", r.Stderr)
	}
	for _, want := range []string{"first-out\n", "post-stop-out\n", "second-out\n"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("stdout lacks %q: %q", want, r.Stdout)
		}
	}
	if !strings.Contains(r.Stderr, "first-err\n") {
		t.Errorf("stderr lacks first-err")
	}
	for app, want := range map[string]string{"first": "0", "second": "3"} {
		b, err := os.ReadFile(filepath.Join(p.Dir, "stage1/rootfs/rkt/status", app))
		if err != nil || string(b) != want {
			t.Errorf("status of %s: %q, %v; want %s", app, b, err, want)
		}
	}
	root := filepath.Join(p.Dir, "stage1/rootfs/opt/stage2/second/rootfs/tmp")
	for name, c := range map[string]byte{"cached": 'x', "mapped": 'y'} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || len(b) != 65536 || strings.Trim(string(b), string(c)) != "" {
			t.Errorf("%s: %d bytes, %v; want 65536 of %q", name, len(b), err, c)
		}
	}
	out, err := exec.Command("journalctl", "-D", filepath.Join(p.Dir, "stage1/rootfs/var/log/journal"), "-o", "cat", "--no-pager").CombinedOutput()
	if err != nil {
		t.Fatalf("journalctl: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "journal-end-marker") {
		t.Errorf("the app's last line is not in the pod's journal")
	}
	// A guest shutdown would have reached these.
	for _, never := range []string{"Reached target shutdown.target", "Reached target poweroff.target"} {
		if strings.Contains(string(out), never) {
			t.Errorf("the guest shut down (%q in its journal)", never)
		}
	}
}

func TestInteractiveStdin(t *testing.T) {
	_, r := runPod(t, harness.RunOpts{Interactive: true, Stdin: strings.NewReader("line one\nline two\n")},
		sh("app", `while read l; do echo "got: $l"; done; echo eof`))
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	if r.Stdout != "got: line one\ngot: line two\neof\n" {
		t.Errorf("stdout %q", r.Stdout)
	}
}

func TestHostname(t *testing.T) {
	_, r := runPod(t, harness.RunOpts{Hostname: "web-1"}, sh("app", "hostname"))
	if r.Stdout != "web-1\n" {
		t.Errorf("hostname %q, want web-1", r.Stdout)
	}
	p, r := runPod(t, harness.RunOpts{}, sh("app", "hostname"))
	if r.Stdout != "rkt-"+p.UUID+"\n" {
		t.Errorf("default hostname %q, want rkt-%s", r.Stdout, p.UUID)
	}
}

func TestRunsInAVM(t *testing.T) {
	_, r := runPod(t, harness.RunOpts{}, sh("app", "uname -r; cat /proc/cpuinfo | grep -c ^processor"))
	host, _ := exec.Command("uname", "-r").Output()
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 2 || lines[0] != "6.1.192" {
		t.Fatalf("guest kernel %q, want our 6.1.192 (host runs %s)", r.Stdout, host)
	}
	if lines[1] != "1" {
		t.Errorf("want 1 vCPU by default, got %s", lines[1])
	}
}

// An app that writes a burst of lines the moment it starts, before
// journald (which starts after the apps) is up: every line reaches run's
// stdout in order, and the journal has them all too.
func TestEarlyOutputBurstKeptWhole(t *testing.T) {
	const n = 3000
	p, r := runPod(t, harness.RunOpts{}, sh("app", fmt.Sprintf("i=1; while [ $i -le %d ]; do echo burst-$i; i=$((i+1)); done", n)))
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	var want strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "burst-%d\n", i)
	}
	if r.Stdout != want.String() {
		t.Errorf("stdout has %d bytes, want the %d lines in order (%d bytes)", len(r.Stdout), n, want.Len())
	}
	out, err := exec.Command("journalctl", "-D", filepath.Join(p.Dir, "stage1/rootfs/var/log/journal"), "-o", "cat", "--no-pager", "-t", "app").CombinedOutput()
	if err != nil {
		t.Fatalf("journalctl: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "burst-"); got != n || !strings.Contains(string(out), fmt.Sprintf("burst-%d\n", n)) {
		t.Errorf("journal has %d of the %d lines", got, n)
	}
}

// The pod's journal holds its apps' output and the kernel's messages
// logged while the pod runs (here one the app writes to the kernel log),
// but not the guest kernel's boot (a template's, for a clone).
func TestJournalPersistsInPod(t *testing.T) {
	p, r := runPod(t, harness.RunOpts{}, sh("app", "echo journal-marker-$((6*7)); echo kmsg-marker-$((6*7)) > /dev/kmsg"))
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	machineID := strings.ReplaceAll(p.UUID, "-", "")
	dir := filepath.Join(p.Dir, "stage1/rootfs/var/log/journal")
	if _, err := os.Stat(filepath.Join(dir, machineID)); err != nil {
		t.Fatalf("no journal for machine %s: %v", machineID, err)
	}
	out, err := exec.Command("journalctl", "-D", dir, "-o", "cat", "--no-pager").CombinedOutput()
	if err != nil {
		t.Fatalf("journalctl: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "journal-marker-42") {
		t.Errorf("app output not in the pod's journal:\n%s", out)
	}
	if !strings.Contains(string(out), "kmsg-marker-42") {
		t.Errorf("a kernel message logged during the pod is not in its journal:\n%s", out)
	}
	if strings.Contains(string(out), "Linux version") {
		t.Errorf("the guest kernel's boot log is in the pod's journal")
	}
}

func TestVMDiesMidRun(t *testing.T) {
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app", "sleep 300")))
	run := p.Start(t, harness.RunOpts{})
	ready := filepath.Join(p.Dir, "stage1/rootfs/rkt/supervisor-status")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if l, err := os.Readlink(ready); err == nil && l == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pod never became ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !p.LockHeld() {
		t.Error("pod lock not held while running")
	}
	if b, err := os.ReadFile(filepath.Join(p.Dir, "pid")); err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(run.Pid) {
		t.Errorf("pid file %q (%v), want %d", b, err, run.Pid)
	}
	qemu, ok := qemuPid(p)
	if !ok {
		t.Fatal("no QEMU process")
	}
	if err := syscall.Kill(qemu, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := run.Wait()
	if r.ExitCode == 0 {
		t.Fatal("run exited 0 although its VM was killed")
	}
	if !strings.Contains(r.Stderr, "VM stopped before its apps finished") {
		t.Errorf("no clear message: %q", r.Stderr)
	}
	if p.LockHeld() {
		t.Error("pod lock still held after run exited")
	}
	assertNoLeaks(t, p)
}

func TestInteractiveTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 33, Cols: 99}); err != nil {
		t.Fatal(err)
	}
	s := harness.NewStage0(t)
	// Then a burst at exit: a terminal's output is not lost either.
	p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app", `tty; stty size; read x; echo "got:$x"; seq 1 20000`)))
	run := p.Start(t, harness.RunOpts{Interactive: true, Stdin: tty, Stdout: tty, Stderr: tty})
	tty.Close()
	var out strings.Builder
	done := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		paused := false
		for {
			n, err := ptmx.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				close(done)
				return
			}
			// A slow terminal: once the burst has begun, stop reading
			// for a while, so everything between the app and us fills.
			if !paused && strings.Contains(out.String(), "got:hello") {
				paused = true
				time.Sleep(2 * time.Second)
			}
		}
	}()
	// Typed before the guest is up: run holds it until the app's terminal
	// is open. A raw host terminal sends CR; the guest terminal maps it.
	ptmx.Write([]byte("hello\r"))
	r := run.Wait()
	<-done
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %q", r.ExitCode, out.String())
	}
	for _, want := range []string{"/dev/pts/", "33 99", "got:hello"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("terminal output lacks %q:\n%q", want, tailOf(out.String()))
		}
	}
	// The terminal turns each newline into CR LF.
	var burst strings.Builder
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&burst, "%d\r\n", i)
	}
	if !strings.HasSuffix(out.String(), burst.String()) {
		t.Errorf("terminal output has %d bytes and ends %q: want it to end with the 20000 lines of the burst", out.Len(), tailOf(out.String()))
	}
	assertNoLeaks(t, p)
}

func TestVMSizing(t *testing.T) {
	s := harness.NewStage0(t)
	script := `grep -c ^processor /proc/cpuinfo; grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2; ` +
		`cg=$(cut -d: -f3 /proc/self/cgroup); cat /sys/fs/cgroup$cg/memory.max /sys/fs/cgroup$cg/cpu.max`
	p := s.Prepare(t, harness.PodOpts{MemoryLimit: "200M", CPULimit: "2"}, harness.BuildACI(t, sh("app", script)))
	r := p.Run(t, harness.RunOpts{Net: "none"})
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	f := strings.Fields(r.Stdout)
	if len(f) != 5 {
		t.Fatalf("output %q", r.Stdout)
	}
	hostCPUs := fmt.Sprint(min(2, runtime.NumCPU()))
	if f[0] != hostCPUs {
		t.Errorf("vCPUs %s, want %s (2 cores asked, capped at the host's)", f[0], hostCPUs)
	}
	// 96 MiB base + 200M (191 MiB) for the app, minus what the guest
	// kernel keeps for itself.
	kb, _ := strconv.Atoi(f[1])
	if kb < 250*1024 || kb > 296*1024 {
		t.Errorf("guest MemTotal %d KiB, want about 296 MiB", kb)
	}
	// rkt's --memory=200M is decimal; the kernel rounds down to pages.
	if f[2] != fmt.Sprint(200000000/4096*4096) {
		t.Errorf("app memory.max %s, want 200M", f[2])
	}
	if f[3] != "200000" {
		t.Errorf("app cpu.max quota %s, want 200000 (2 CPUs)", f[3])
	}
}

func TestRunRefusesFlagsAVMCannotHonour(t *testing.T) {
	s := harness.NewStage0(t)
	for _, tt := range []struct {
		name string
		o    harness.RunOpts
		want string
	}{
		{"ipc=parent", harness.RunOpts{IPC: "parent"}, "--ipc=parent"},
		{"net=host", harness.RunOpts{Net: "host"}, "--net=host"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app", "true")))
			r := p.Run(t, tt.o)
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, tt.want) || !strings.Contains(r.Stderr, "not supported") {
				t.Errorf("exit %d, stderr %q: want a clear refusal naming %s", r.ExitCode, r.Stderr, tt.want)
			}
			if r.Duration > 10*time.Second {
				t.Errorf("refusal took %v", r.Duration)
			}
		})
	}
}

// Output written just before an app exits is not lost, whatever its pace:
// 30,000 short lines on stdout and on stderr at once, then exit (the size
// that lost a fifth of its tail before), and a single write of several MiB.
// Each stream reaches run's own whole and in order, and the journal has
// every line.
func TestOutputAtExitKeptWhole(t *testing.T) {
	const n = 30000
	lines := func(prefix string) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "%s %d\n", prefix, i)
		}
		return b.String()
	}
	script := fmt.Sprintf("(seq 1 %d | sed 's/^/err /' >&2) & seq 1 %d | sed 's/^/out /'; wait", n, n)
	p, r := runPod(t, harness.RunOpts{}, sh("app", script))
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, tailOf(r.Stderr))
	}
	if want := lines("out"); r.Stdout != want {
		t.Errorf("stdout has %d bytes, want the %d lines in order (%d bytes); it ends %q", len(r.Stdout), n, len(want), tailOf(r.Stdout))
	}
	if want := lines("err"); !strings.HasSuffix(r.Stderr, want) {
		t.Errorf("stderr has %d bytes, want it to end with the %d lines in order (%d bytes); it ends %q", len(r.Stderr), n, len(want), tailOf(r.Stderr))
	}
	out, err := exec.Command("journalctl", "-D", filepath.Join(p.Dir, "stage1/rootfs/var/log/journal"), "-o", "cat", "--no-pager", "-t", "app").Output()
	if err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	for _, s := range []string{"out", "err"} {
		if got := strings.Count(string(out), s+" "); got != n {
			t.Errorf("journal has %d of the %d %s lines", got, n, s)
		}
	}

	const size = 4 << 20
	_, r = runPod(t, harness.RunOpts{}, sh("app", fmt.Sprintf("head -c %d /dev/zero | tr '\\000' x", size)))
	if r.ExitCode != 0 {
		t.Fatalf("big write: exit %d: %s", r.ExitCode, tailOf(r.Stderr))
	}
	if len(r.Stdout) != size || strings.Trim(r.Stdout, "x") != "" {
		t.Errorf("big write: stdout has %d bytes, want %d times x", len(r.Stdout), size)
	}
}

// tailOf is the end of s, for messages.
func tailOf(s string) string {
	if len(s) > 300 {
		return "..." + s[len(s)-300:]
	}
	return s
}

// rkt run --stdin/--stdout/--stderr: the attach modes (tty, stream) are
// refused at once with a message naming the flag, since there is no rkt
// attach to serve them; --stdout=null drops the app's stdout.
func TestStreamModes(t *testing.T) {
	s := harness.NewStage0(t)
	for _, tt := range []struct {
		name string
		o    harness.PodOpts
		want string
	}{
		{"stdin=stream", harness.PodOpts{Stdin: "stream"}, "--stdin=stream"},
		{"stdout=tty", harness.PodOpts{Stdout: "tty"}, "--stdout=tty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := s.Prepare(t, tt.o, harness.BuildACI(t, sh("app", "echo ran")))
			r := p.Run(t, harness.RunOpts{Net: "none"})
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, tt.want) || !strings.Contains(r.Stderr, "rkt attach") || containsLine(r.Stdout, "ran") {
				t.Errorf("exit %d, stdout %q, stderr %q: want a refusal naming %s before the app runs", r.ExitCode, r.Stdout, r.Stderr, tt.want)
			}
			assertNoLeaks(t, p)
		})
	}
	t.Run("stdout=null", func(t *testing.T) {
		p := s.Prepare(t, harness.PodOpts{Stdout: "null"}, harness.BuildACI(t, sh("app", "echo dropped; echo kept >&2")))
		r := p.Run(t, harness.RunOpts{Net: "none"})
		if r.ExitCode != 0 || strings.Contains(r.Stdout, "dropped") || !containsLine(r.Stderr, "kept") {
			t.Errorf("exit %d, stdout %q, stderr %q: want stdout dropped, stderr kept", r.ExitCode, r.Stdout, r.Stderr)
		}
		assertNoLeaks(t, p)
	})
}

// An app whose executable is missing (rkt run --exec=/nonexistent) fails
// with the path and the reason on stderr, before a VM is started.
func TestMissingExecutable(t *testing.T) {
	_, r := runPod(t, harness.RunOpts{Net: "none"}, harness.AppSpec{Name: "app", Exec: []string{"/nonexistent", "arg"}})
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, `"/nonexistent"`) || !strings.Contains(r.Stderr, "no such file") {
		t.Errorf("exit %d, stderr %q: want a failure naming /nonexistent and why", r.ExitCode, r.Stderr)
	}
	if r.Duration > 10*time.Second {
		t.Errorf("the refusal took %v", r.Duration)
	}
}
