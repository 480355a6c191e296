package tests

// Helpers shared by the end-to-end tests: building and running pods
// through the stage0 stand-in, the leak check every run ends with, waiting
// for a condition, and the "app:key=value" lines test apps report with.

import (
	"bufio"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// readyTimeout bounds a pod's start, up to its apps running, under TCG on
// a busy machine.
const readyTimeout = 2 * time.Minute

// sh is an app running a busybox shell script.
func sh(name, script string) harness.AppSpec {
	return harness.AppSpec{Name: name, Exec: []string{"/bin/sh", "-c", script}}
}

// acName is s as an AC name; the test fails if it is not one.
func acName(t *testing.T, s string) types.ACName {
	t.Helper()
	n, err := types.NewACName(s)
	if err != nil {
		t.Fatal(err)
	}
	return *n
}

// preparePod prepares a pod of one app per spec, with default pod options,
// on a new stage0.
func preparePod(t *testing.T, specs ...harness.AppSpec) (*harness.Stage0, *harness.Pod) {
	t.Helper()
	s := harness.NewStage0(t)
	var acis []string
	for _, sp := range specs {
		acis = append(acis, harness.BuildACI(t, sp))
	}
	return s, s.Prepare(t, harness.PodOpts{}, acis...)
}

// runPod prepares a pod from specs, runs it like `rkt run` and checks that
// nothing of it is left on the host afterwards.
func runPod(t *testing.T, o harness.RunOpts, specs ...harness.AppSpec) (*harness.Pod, harness.RunResult) {
	t.Helper()
	_, p := preparePod(t, specs...)
	r := p.Run(t, o)
	assertNoLeaks(t, p)
	return p, r
}

// startPod prepares a pod from specs and starts it without networking; it
// does not wait for the pod to be ready.
func startPod(t *testing.T, specs ...harness.AppSpec) (*harness.Stage0, *harness.Pod, *harness.Running) {
	t.Helper()
	s, p := preparePod(t, specs...)
	return s, p, p.Start(t, harness.RunOpts{Net: "none"})
}

// assertNoLeaks fails if anything of the pod is left on the host after its
// run exited: a process referencing the pod directory (QEMU's command line
// names it; such processes are killed by PID), a mount under the pod
// directory, or a UNIX socket in it.
func assertNoLeaks(t *testing.T, p *harness.Pod) {
	t.Helper()
	for _, pid := range harness.ProcessesMentioning(p.Dir) {
		harness.MustBeGone(t, "process of pod "+p.UUID, pid)
	}
	for _, mp := range p.StrayMounts() {
		t.Errorf("LEAK: mount %s of pod %s", mp, p.UUID)
	}
	for _, sock := range harness.SocketsUnder(p.Dir) {
		t.Errorf("LEAK: socket %s of pod %s", sock, p.UUID)
	}
	for _, cg := range harness.PodCgroups(p.UUID) {
		t.Errorf("LEAK: cgroup %s of pod %s", cg, p.UUID)
	}
}

// killRunThenGC kills run without any chance to clean up, then runs gc,
// which must succeed and leave nothing of the pod behind.
func killRunThenGC(t *testing.T, s *harness.Stage0, p *harness.Pod, run *harness.Running) {
	t.Helper()
	syscall.Kill(run.Pid, syscall.SIGKILL)
	run.Wait()
	gcLeavesNothing(t, s, p, harness.GCOpts{})
}

// gcLeavesNothing runs gc on the ended pod p (keeping its directory for
// the checks), which must succeed and leave nothing of the pod behind.
func gcLeavesNothing(t *testing.T, s *harness.Stage0, p *harness.Pod, o harness.GCOpts) {
	t.Helper()
	o.Keep = true
	if code, stderr := s.GC(t, p, o); code != 0 {
		t.Fatalf("gc exited %d: %s", code, stderr)
	}
	assertNoLeaks(t, p)
}

// waitUntil calls done every interval until it returns true, for at most
// within; it reports whether done returned true.
func waitUntil(within, interval time.Duration, done func() bool) bool {
	for deadline := time.Now().Add(within); !done(); time.Sleep(interval) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// report defines p, with which a test app's script reports what it found:
// `p key value` prints "app:key=value" (app being the app's name), which
// results parses.
const report = `p() { echo "$AC_APP_NAME:$1=$2"; }
`

// results parses the apps' report lines.
func results(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.Contains(k, ":") {
			m[k] = v
		}
	}
	return m
}

func checkResults(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s = %q, want %q", k, g, w)
		}
	}
}

func containsLine(text, sub string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// unpackStage1 unpacks the built ACI into a new temporary directory, as
// rkt does a pod's stage1, and picks the accelerator from STAGE1_KVM_ACCEL
// and the host; notice says why it fell back to TCG, if it did.
func unpackStage1(tb testing.TB) (dir string, accel qemu.Accel, notice string) {
	tb.Helper()
	dir = tb.TempDir()
	if err := harness.Unpack(harness.ACI(tb), dir); err != nil {
		tb.Fatal(err)
	}
	accel, notice = chooseAccel(tb)
	return dir, accel, notice
}

// chooseAccel is the accelerator run picks on this host (STAGE1_KVM_ACCEL
// and the host's KVM); notice says why it fell back to TCG, if it did.
func chooseAccel(tb testing.TB) (qemu.Accel, string) {
	tb.Helper()
	accel, notice, err := qemu.ChooseAccel(os.Getenv(settings.AccelEnv), hypervisor.ProbeHost())
	if err != nil {
		tb.Fatal(err)
	}
	return accel, notice
}

// selftestVM is the VM that boots the guest image of the stage1 unpacked
// in dir (unpackStage1) into its self-test target (no pod): the guest
// reports its boot timings as a ready event on the events port, whose host
// end is sock, then powers off.
func selftestVM(dir string, accel qemu.Accel, debug bool, sock string) qemu.Config {
	rootfs := filepath.Join(dir, "rootfs")
	return qemu.Config{
		Binary:    qemu.Bundled(rootfs),
		Accel:     accel,
		Kernel:    filepath.Join(rootfs, contract.Kernel),
		Image:     filepath.Join(rootfs, contract.GuestImage),
		Cmdline:   qemu.KernelCmdline(contract.SelftestTarget, accel, debug),
		MemoryMiB: 128,
		CPUs:      1,
		TBSizeMiB: settings.DefaultTCGBufferMiB,
		Ports:     []qemu.Port{{Name: contract.EventsPort, Socket: sock}},
	}
}

// selftestReady plays the host's part on a self-test VM's events port
// (conn): it sends a pod configuration when the guest reaches the
// template point, as run does, and returns the first event after the
// pre-init's (kernel-booted) and the template point.
func selftestReady(conn net.Conn) (string, contract.Event, error) {
	c := contract.PodConfig{Hostname: "selftest", MachineID: strings.Repeat("5e", 16), Entropy: make([]byte, contract.EntropyBytes), UnixNano: time.Now().UnixNano(),
		IO: contract.IOConfig{Apps: []string{"selftest"}}}
	rand.Read(c.Entropy)
	b, err := c.Encode()
	if err != nil {
		return "", contract.Event{}, err
	}
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return line, contract.Event{}, err
		}
		e, err := contract.ParseEvent(line)
		switch {
		case err == nil && e.Kind == contract.EventKernelBooted:
		case err == nil && e.Kind == contract.EventTemplatePoint:
			if _, err := conn.Write(b); err != nil {
				return line, e, err
			}
		default:
			return line, e, err
		}
	}
}
