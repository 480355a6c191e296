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

	"github.com/stage1-kvm/stage1-kvm/stage1/layout"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// Once the guest has booted, run empties TCG's translation cache through
// our QEMU's x-tcg-flush (the boot's code, tens of MiB, mostly never runs
// again); the pod must go on working as before.
func TestBootTranslationsReleased(t *testing.T) {
	st := harness.NewStage0(t)
	p := st.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app", "echo started; sleep 600")))
	run := p.Start(t, harness.RunOpts{Net: "none", Debug: true})
	p.WaitReady(t, readyTimeout)

	const released = "released the boot's translated code"
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, stderr := run.Output()
		if strings.Contains(stderr, released) {
			break
		}
		if strings.Contains(stderr, "keeping the boot's translated code") || time.Now().After(deadline) {
			t.Fatalf("no %q in run's debug output:\n%s", released, tailLines(stderr, 30))
		}
	}

	// QEMU counts the flush: its own statistics, read over the same socket.
	if n := jitFlushes(t, filepath.Join(p.Dir, layout.QMPSocket)); n < 1 {
		t.Errorf("TB flush count = %d after the release, want >= 1", n)
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

// jitFlushes reads "TB flush count" from QEMU's x-query-jit.
func jitFlushes(t *testing.T, socket string) int {
	t.Helper()
	m, err := qmp.NewSocketMonitor("unix", socket, 5*time.Second)
	if err != nil {
		t.Fatalf("qmp: %v", err)
	}
	if err := m.Connect(); err != nil {
		t.Fatalf("qmp: %v", err)
	}
	defer m.Disconnect()
	reply, err := m.Run([]byte(`{"execute":"x-query-jit"}`))
	if err != nil {
		t.Fatalf("x-query-jit: %v", err)
	}
	var r struct {
		Return struct {
			Text string `json:"human-readable-text"`
		} `json:"return"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatalf("x-query-jit reply %s: %v", reply, err)
	}
	m1 := regexp.MustCompile(`TB flush count\s+(\d+)`).FindStringSubmatch(r.Return.Text)
	if m1 == nil {
		t.Fatalf("no flush count in x-query-jit:\n%s", r.Return.Text)
	}
	n, _ := strconv.Atoi(m1[1])
	return n
}

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
