package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hostres"
	"github.com/stage1-kvm/stage1-kvm/stage1/unixsock"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// termApp runs until SIGTERM, then says so and exits 0; its post-stop
// handler leaves a mark in its rootfs (on the host).
func termApp() harness.AppSpec {
	spec := sh("app", "trap 'echo got-term; exit 0' TERM; echo up; sleep 300 & wait")
	spec.EventHandlers = []types.EventHandler{
		{Name: "post-stop", Exec: []string{"/bin/sh", "-c", "echo done > /post-stop-ran"}},
	}
	return spec
}

func checkOrderlyStop(t *testing.T, p *harness.Pod, r harness.RunResult) {
	t.Helper()
	if st, ok := p.AppStatus("app"); !ok || st != 0 {
		t.Errorf("app status %d (present %v), want 0 from its TERM trap", st, ok)
	}
	if !strings.Contains(r.Stdout, "got-term") {
		t.Errorf("the app did not get SIGTERM: stdout %q", r.Stdout)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "stage1/rootfs/opt/stage2/app/rootfs/post-stop-ran")); err != nil {
		t.Errorf("post-stop handler did not run: %v", err)
	}
	if p.LockHeld() {
		t.Error("pod lock still held")
	}
}

func TestStopGraceful(t *testing.T) {
	_, p, run := startPod(t, termApp())
	p.WaitReady(t, readyTimeout)
	stop := p.Stop(t, harness.StopOpts{})
	if stop.ExitCode != 0 {
		t.Fatalf("stop exited %d: %s", stop.ExitCode, stop.Stderr)
	}
	r := run.Wait()
	checkOrderlyStop(t, p, r)
	assertNoLeaks(t, p)
}

func TestSIGTERMToRunIsOrderly(t *testing.T) {
	// What systemd does when a unit running `rkt run` is stopped.
	_, p, run := startPod(t, termApp())
	p.WaitReady(t, readyTimeout)
	if err := syscall.Kill(run.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := run.Wait()
	checkOrderlyStop(t, p, r)
	assertNoLeaks(t, p)
}

func TestStopForce(t *testing.T) {
	_, p, run := startPod(t, termApp())
	p.WaitReady(t, readyTimeout)
	start := time.Now()
	stop := p.Stop(t, harness.StopOpts{Force: true})
	if stop.ExitCode != 0 {
		t.Fatalf("stop --force exited %d: %s", stop.ExitCode, stop.Stderr)
	}
	r := run.Wait()
	if r.ExitCode == 0 {
		t.Error("a forced stop cannot report success: the apps never finished")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("forced stop took %v", d)
	}
	assertNoLeaks(t, p)
}

func TestStopWhileBooting(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force=%v", force), func(t *testing.T) {
			_, p, run := startPod(t, termApp())
			// Wait for run to write its pid (the VM has just been
			// started), then stop at once, long before the guest is up.
			waitPid(t, p)
			stop := p.Stop(t, harness.StopOpts{Force: force})
			if stop.ExitCode != 0 {
				t.Fatalf("stop exited %d: %s", stop.ExitCode, stop.Stderr)
			}
			run.Wait()
			if p.LockHeld() {
				t.Error("pod lock still held")
			}
			assertNoLeaks(t, p)
		})
	}
}

func waitPid(t *testing.T, p *harness.Pod) {
	t.Helper()
	if !waitUntil(30*time.Second, 20*time.Millisecond, func() bool { _, err := p.PID(); return err == nil }) {
		t.Fatal("run never wrote its pid")
	}
}

func TestGCAfterExit(t *testing.T) {
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app", "exit 0")))
	if r := p.Run(t, harness.RunOpts{Net: "none"}); r.ExitCode != 0 {
		t.Fatalf("run: %d %s", r.ExitCode, r.Stderr)
	}
	for i := 0; i < 2; i++ { // idempotent
		code, stderr := s.GC(t, p, harness.GCOpts{Keep: true})
		if code != 0 {
			t.Fatalf("gc #%d exited %d: %s", i+1, code, stderr)
		}
		for _, sock := range hostres.Sockets {
			if _, err := os.Stat(filepath.Join(p.Dir, sock)); err == nil {
				t.Errorf("gc #%d left %s", i+1, sock)
			}
		}
	}
	assertNoLeaks(t, p)
}

func TestGCAfterRunKilledMidStart(t *testing.T) {
	s, p, run := startPod(t, termApp())
	waitPid(t, p)
	killRunThenGC(t, s, p, run)
	for _, sock := range hostres.Sockets {
		if _, err := os.Stat(filepath.Join(p.Dir, sock)); err == nil {
			t.Errorf("gc left %s", sock)
		}
	}
}

// rkt puts a pod under --dir, however deep: every UNIX socket of the pod
// directory is then longer than a socket address holds. The pod runs,
// run reaches QEMU over QMP (the boot's memory released), enter and an
// orderly stop reach the guest agent, and nothing is left.
func TestLongPodDir(t *testing.T) {
	st := harness.NewStage0LongDir(t)
	p := st.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, termApp()))
	if s := filepath.Join(p.Dir, contract.QMPSocket); len(s) <= unixsock.MaxPath {
		t.Fatalf("%s: %d bytes, the test proves nothing", s, len(s))
	}
	run := p.Start(t, harness.RunOpts{Net: "none", Debug: true})
	p.WaitReady(t, readyTimeout)
	waitRunLog(t, run, "released boot-time memory", time.Minute, "keeping boot-time memory")
	if r := p.Enter(t, harness.EnterOpts{App: "app"}, "/bin/sh", "-c", "echo alive"); r.ExitCode != 0 || r.Stdout != "alive\n" {
		t.Fatalf("enter: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	if stop := p.Stop(t, harness.StopOpts{}); stop.ExitCode != 0 {
		t.Fatalf("stop exited %d: %s", stop.ExitCode, stop.Stderr)
	}
	r := run.Wait()
	checkOrderlyStop(t, p, r)
	assertNoLeaks(t, p)
}
