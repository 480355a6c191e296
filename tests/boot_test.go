package tests

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// Bounds for one boot under TCG on a busy 2-core machine; a healthy boot
// takes a few seconds.
const (
	bootTimeout     = 90 * time.Second
	poweroffTimeout = 30 * time.Second
)

// TestBootSelftest boots the kernel and guest image from the unpacked ACI,
// with the ACI's own QEMU and libraries, into the self-test target: systemd
// must report on the events port and then power the VM off by itself.
func TestBootSelftest(t *testing.T) {
	dir, accel, notice := unpackStage1(t)
	if notice != "" {
		t.Log(notice)
	}

	sock := filepath.Join(dir, "events.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	console := filepath.Join(dir, "console.log")
	cfg := selftestVM(dir, accel, true, sock)
	cfg.Console = console
	vm, err := hypervisor.Start(cfg, filepath.Join(dir, "jail"), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer harness.MustBeGone(t, "qemu", vm.Pid())
	defer vm.Kill()
	showConsole := func() {
		b, _ := os.ReadFile(console)
		t.Logf("guest console:\n%s", b)
	}

	ln.(*net.UnixListener).SetDeadline(time.Now().Add(bootTimeout))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("QEMU never connected the events port: %v", err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(bootTimeout))
	line, bt, err := selftestReady(conn)
	if err == nil && (bt.Kind != contract.EventReady || bt.TotalMs == 0) {
		err = fmt.Errorf("%q is not a ready event with boot timings", line)
	}
	if err != nil {
		showConsole()
		t.Fatal(err)
	}
	// Only the guest can produce these: its own clock, read in the guest.
	if bt.KernelMs <= 0 || bt.TotalMs <= bt.KernelMs {
		t.Fatalf("implausible guest timings %+v", bt)
	}
	t.Logf("guest boot: kernel %d ms, systemd to marker %d ms, total %d ms (%s)", bt.KernelMs, bt.TotalMs-bt.KernelMs, bt.TotalMs, accel)

	select {
	case <-vm.Done():
		if err := vm.Wait(); err != nil {
			showConsole()
			t.Fatalf("VM did not power off cleanly: %v", err)
		}
	case <-time.After(poweroffTimeout):
		showConsole()
		t.Fatalf("VM still running %v after the marker", poweroffTimeout)
	}
	b, _ := os.ReadFile(console)
	for _, want := range []string{"systemd-shutdown", "reboot: machine restart"} {
		if !containsLine(string(b), want) {
			showConsole()
			t.Errorf("console lacks %q: shutdown was not orderly", want)
		}
	}
}
