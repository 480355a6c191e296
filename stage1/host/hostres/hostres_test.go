package hostres

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// A fake QEMU: a sleep whose command line carries the pod's marker.
func startFake(t *testing.T, podDir string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", "-c", "sleep 60; :", "guest="+QEMUName(podDir))
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

func TestNamesPod(t *testing.T) {
	const pod = "/var/lib/rkt/pods/run/4f2a"
	args := func(a ...string) []byte { return []byte(strings.Join(a, "\x00") + "\x00") }
	for _, c := range []struct {
		cmdline []byte
		want    bool
	}{
		{args("/qemu/bin/qemu-system-x86_64", "-name", "guest="+pod, "-m", "128"), true},
		// The jailer, before it executes QEMU: QEMU's arguments are its own.
		{args("/s1/jailer", "/qemu/bin/qemu-system-x86_64", "-name", "guest="+pod), true},
		// rkt moved the pod directory (run -> exited-garbage).
		{args("qemu", "-name", "guest=/var/lib/rkt/pods/exited-garbage/4f2a"), true},
		{args("qemu", "-name", "guest=/var/lib/rkt/pods/run/other"), false},
		// A path mentioned is not the marker; nor a relative name.
		{args("ls", pod+"/"), false},
		{args("qemu", "-name", "guest=4f2a"), false},
		{args("qemu", "-name", "guest="+pod+"x"), false},
		{nil, false},
	} {
		if got := namesPod(c.cmdline, pod); got != c.want {
			t.Errorf("namesPod(%q) = %v, want %v", c.cmdline, got, c.want)
		}
	}
}

// The jail directory goes, without following a symlink put in its place
// and without emptying a directory that is not the empty mount point.
func TestRemoveJail(t *testing.T) {
	pod := t.TempDir()
	jail := filepath.Join(pod, contract.JailDir)
	if err := os.MkdirAll(jail, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := RemoveJail(pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(jail); !os.IsNotExist(err) {
		t.Fatalf("jail directory still there: %v", err)
	}
	if err := RemoveJail(pod); err != nil {
		t.Errorf("idempotent: %v", err)
	}
	target := t.TempDir()
	os.WriteFile(filepath.Join(target, "keep"), nil, 0o644)
	if err := os.Symlink(target, jail); err != nil {
		t.Fatal(err)
	}
	if err := RemoveJail(pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "keep")); err != nil {
		t.Errorf("the symlink's target was touched: %v", err)
	}
	os.MkdirAll(filepath.Join(jail, "sub"), 0o700)
	if err := RemoveJail(pod); err == nil {
		t.Error("a jail directory with contents was removed")
	}
}

// gc removes only a cgroup named for the pod, under the cgroup file
// systems; a pod without a record has nothing to remove.
func TestRemoveMemcgChecksTheRecord(t *testing.T) {
	pod := filepath.Join(t.TempDir(), "2d0c6d3a-9d8e-4a55-b1f1-0fb4f2c3e1aa")
	os.MkdirAll(filepath.Join(pod, contract.VMDir), 0o755)
	if err := RemoveMemcg(pod); err != nil {
		t.Errorf("no record: %v", err)
	}
	victim := t.TempDir()
	for _, named := range []string{victim, "/sys/fs/cgroup/memory/other", "/sys/fs/cgroup/memory/../../../" + victim} {
		os.WriteFile(filepath.Join(pod, contract.MemcgFile), []byte(named), 0o600)
		if err := RemoveMemcg(pod); err == nil {
			t.Errorf("record %q: removed", named)
		}
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("the directory named was touched: %v", err)
	}
}
