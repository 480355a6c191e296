package tests

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// Once the guest has booted, run frees what only boot needed through our
// QEMU's own QMP commands: the copy of the kernel (x-drop-boot-kernel) and
// TCG's translated code (x-tcg-flush; tens of MiB that mostly never run
// again). The pod must go on working as before.
func TestBootMemoryReleased(t *testing.T) {
	st := harness.NewStage0(t)
	p := st.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app", "echo started; sleep 600")))
	run := p.Start(t, harness.RunOpts{Net: "none", Debug: true})
	p.WaitReady(t, readyTimeout)

	waitRunLog(t, run, "released boot-time memory", time.Minute, "keeping boot-time memory")

	socket := filepath.Join(p.Dir, contract.QMPSocket)
	// QEMU counts the flush: its own statistics, read over the same socket.
	jit := jitInfo(t, socket)
	if n := jitNumber(t, jit, "TB flush count"); n < 1 {
		t.Errorf("TB flush count = %d after the release, want >= 1", n)
	}
	// A clone keeps its template's translations through that flush: the
	// code it runs next is taken from them again.
	if strings.Contains(jit, "Translation cache image") {
		if !regexp.MustCompile(`(?m)^state\s+in use$`).MatchString(jit) || jitNumber(t, jit, "taken") == 0 {
			t.Errorf("a clone's translation cache image after the boot's flush:\n%s", jit)
		}
		t.Logf("the clone's image served %d blocks by the boot's flush", jitNumber(t, jit, "taken"))
	}
	// The kernel's copy is gone: a second drop finds nothing.
	if reply := qmpReply(t, socket, `{"execute":"x-drop-boot-kernel"}`); !strings.Contains(reply, "no copy of a boot kernel") {
		t.Errorf("second x-drop-boot-kernel: %s", reply)
	}
	// The guest runs new code as before: enter, and the app still there.
	r := p.Enter(t, harness.EnterOpts{App: "app"}, "/bin/sh", "-c", "echo alive; pidof sleep")
	if r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, "alive\n") || strings.TrimSpace(strings.TrimPrefix(r.Stdout, "alive\n")) == "" {
		t.Fatalf("enter after the release: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	syscall.Kill(run.Pid, syscall.SIGTERM)
	res := run.Wait()
	if !strings.HasPrefix(res.Stdout, "started\n") {
		t.Errorf("app stdout = %q", res.Stdout)
	}
}

// jitInfo is the text of QEMU's x-query-jit.
func jitInfo(t *testing.T, socket string) string {
	t.Helper()
	reply := qmpReply(t, socket, `{"execute":"x-query-jit"}`)
	var r struct {
		Return struct {
			Text string `json:"human-readable-text"`
		} `json:"return"`
	}
	if err := json.Unmarshal([]byte(reply), &r); err != nil {
		t.Fatalf("x-query-jit reply %s: %v", reply, err)
	}
	return r.Return.Text
}

// jitNumber is the number x-query-jit's text gives on the line label starts.
func jitNumber(t *testing.T, text, label string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `\s+(\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %q in x-query-jit:\n%s", label, text)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// qmpReply runs one QMP command and returns QEMU's reply, or its error's text.
func qmpReply(t *testing.T, socket, cmd string) string {
	t.Helper()
	m, err := qmp.NewSocketMonitor("unix", socket, 5*time.Second)
	if err != nil {
		t.Fatalf("qmp: %v", err)
	}
	if err := m.Connect(); err != nil {
		t.Fatalf("qmp: %v", err)
	}
	defer m.Disconnect()
	reply, err := m.Run([]byte(cmd))
	if err != nil {
		return err.Error()
	}
	return string(reply)
}

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Code the guest ran once (here an enter) is dropped from QEMU's
// translation cache once the guest is idle again, so an idle pod costs
// what it did before it was used.
func TestIdleTrimsTranslations(t *testing.T) {
	st := harness.NewStage0(t)
	p := st.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app", "echo started; sleep 600")))
	run := p.Start(t, harness.RunOpts{Net: "none", Debug: true})
	p.WaitReady(t, readyTimeout)
	pid, ok := qemuPid(p)
	if !ok {
		t.Fatal("no QEMU for the pod")
	}
	cache := func() int64 { return qemuPSSByKind(pid)["translation cache"] } // KiB

	const dropped = "dropped "
	// After the boot's two flushes, run takes the idle guest's code as
	// its baseline.
	waitRunLog(t, run, "translated code at", 3*time.Minute)
	idle := cache()

	r := p.Enter(t, harness.EnterOpts{App: "app"}, "/bin/sh", "-c", "ls -l / /etc >/dev/null && echo ok")
	if r.ExitCode != 0 || r.Stdout != "ok\n" {
		t.Fatalf("enter: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	used := cache()
	if used < idle+1024 {
		t.Fatalf("translation cache %d KiB idle, %d KiB after an enter: the enter did not grow it, the test proves nothing", idle, used)
	}
	if n := strings.Count(stderrOf(run), dropped); n != 0 {
		t.Fatalf("run dropped translated code %d times before the enter", n)
	}

	waitRunLog(t, run, dropped, 3*time.Minute)
	time.Sleep(5 * time.Second)
	if after := cache(); after > used-1024 {
		t.Errorf("translation cache %d KiB idle, %d KiB after an enter, %d KiB once idle again: not dropped", idle, used, after)
	} else {
		t.Logf("translation cache %d KiB idle, %d KiB after an enter, %d KiB once idle again", idle, used, after)
	}
	if r := p.Enter(t, harness.EnterOpts{App: "app"}, "/bin/sh", "-c", "echo alive"); r.ExitCode != 0 || r.Stdout != "alive\n" {
		t.Fatalf("enter after the trim: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	syscall.Kill(run.Pid, syscall.SIGTERM)
	if res := run.Wait(); !strings.HasPrefix(res.Stdout, "started\n") {
		t.Errorf("app stdout = %q", res.Stdout)
	}
}

// waitRunLog waits, at most within, until run's debug output holds what;
// it fails the test at the deadline, or at once if any of failOn shows up.
func waitRunLog(t *testing.T, run *harness.Running, what string, within time.Duration, failOn ...string) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		stderr := stderrOf(run)
		if strings.Contains(stderr, what) {
			return
		}
		failed := time.Now().After(deadline)
		for _, f := range failOn {
			failed = failed || strings.Contains(stderr, f)
		}
		if failed {
			t.Fatalf("no %q in run's debug output within %v:\n%s", what, within, tailLines(stderr, 30))
		}
	}
}

func stderrOf(run *harness.Running) string {
	_, stderr := run.Output()
	return stderr
}
