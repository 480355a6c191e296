package hostres

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// A fake QEMU: a sleep whose command line names the pod directory.
func startFake(t *testing.T, podDir string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", "-c", "sleep 60; : "+podDir+"/x")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Until the child has exec'd, its command line is still ours.
	for deadline := time.Now().Add(5 * time.Second); !belongsToPod(cmd.Process.Pid, podDir); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the fake QEMU never showed its command line")
		}
	}
	return cmd
}

func TestKillQEMUOnlyOurs(t *testing.T) {
	pod := t.TempDir()
	os.MkdirAll(filepath.Join(pod, "vm"), 0o755)
	other := t.TempDir()
	// The PID file names a process of another pod: it must survive.
	foreign := startFake(t, other)
	if err := WriteQEMUPid(pod, foreign.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := QEMUPid(pod); ok {
		t.Fatal("a process of another pod was taken for ours")
	}
	if err := KillQEMU(pod); err != nil {
		t.Fatal(err)
	}
	if !belongsToPod(foreign.Process.Pid, other) {
		t.Fatal("another pod's process was killed")
	}

	ours := startFake(t, pod)
	WriteQEMUPid(pod, ours.Process.Pid)
	done := make(chan struct{})
	go func() { ours.Wait(); close(done) }()
	if err := KillQEMU(pod); err != nil {
		t.Fatal(err)
	}
	<-done
	if _, err := os.Stat(filepath.Join(pod, contract.QEMUPidFile)); !os.IsNotExist(err) {
		t.Error("pid file left behind")
	}
	// Idempotent.
	if err := ReleaseAll(pod); err != nil {
		t.Fatal(err)
	}
}
