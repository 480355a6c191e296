package harness

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/appc/spec/aci"
	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

func TestBuildACI(t *testing.T) {
	t.Parallel()
	cpu, err := types.NewResourceCPUIsolator("500m", "500m")
	if err != nil {
		t.Fatal(err)
	}
	spec := AppSpec{
		Name:              "spec-app",
		Exec:              []string{"/bin/sh", "-c", "id"},
		User:              "user",
		Group:             "users",
		Env:               []types.EnvironmentVariable{{Name: "FOO", Value: "bar"}},
		WorkingDirectory:  "/data",
		SupplementaryGIDs: []int{100, 1000},
		EventHandlers:     []types.EventHandler{{Name: "pre-start", Exec: []string{"/bin/true"}}},
		Isolators:         types.Isolators{cpu.AsIsolator()},
		Files: map[string]string{
			"/data/":        "",
			"/data/run.sh":  "#!/bin/sh\necho hi\n",
			"/etc/motd":     "hello\n",
			"/etc/hostname": "box\n",
		},
	}
	p := BuildACI(t, spec)
	if filepath.Base(p) != "spec-app.aci" {
		t.Errorf("path %s", p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := aci.ValidateArchive(tar.NewReader(bytes.NewReader(b))); err != nil {
		t.Fatalf("appc rejects the test image: %v", err)
	}
	again, err := testImage(spec)
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("the same spec should give the same bytes (err %v)", err)
	}

	info, err := inspectACI(p)
	if err != nil {
		t.Fatal(err)
	}
	im := info.Manifest
	if im.Name.String() != "example.com/test/spec-app" {
		t.Errorf("image name %s", im.Name)
	}
	for k, v := range map[string]string{"version": "1.0.0", "os": "linux", "arch": "amd64"} {
		if got, _ := im.Labels.Get(k); got != v {
			t.Errorf("label %s=%q, want %q", k, got, v)
		}
	}
	a := im.App
	if !reflect.DeepEqual([]string(a.Exec), spec.Exec) || a.User != "user" || a.Group != "users" ||
		a.WorkingDirectory != "/data" || !reflect.DeepEqual(a.SupplementaryGIDs, []int{100, 1000}) ||
		len(a.EventHandlers) != 1 || len(a.Isolators) != 1 {
		t.Errorf("app section %+v", a)
	}
	if v, _ := a.Environment.Get("FOO"); v != "bar" {
		t.Errorf("env %v", a.Environment)
	}
	if name, err := appNameOf(im.Name); err != nil || name.String() != "spec-app" {
		t.Errorf("rkt would name the app %v (%v), want spec-app", name, err)
	}

	d := t.TempDir()
	if _, err := renderACI(p, d); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(d, "rootfs")
	for _, applet := range []string{"sh", "echo", "cat", "env", "id", "pwd", "hostname", "sleep", "true", "false",
		"uname", "kill", "ls", "head", "printf", "test", "mkdir", "touch", "grep", "wc", "dd", "httpd", "wget"} {
		if l, err := os.Readlink(filepath.Join(rootfs, "bin", applet)); err != nil || l != "busybox" {
			t.Errorf("bin/%s: %q %v", applet, l, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "data/run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("scripts should be executable: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "etc/motd")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("etc/motd: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "etc/passwd")); string(b) != defaultPasswd {
		t.Errorf("etc/passwd:\n%s", b)
	}

	// The rootfs must work on its own: busybox is static and finds its
	// users, with no help from the host.
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	cmd := exec.Command("/bin/id", "user")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	cmd.Env = []string{"PATH=/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "uid=1000(user) gid=1000(user) groups=1000(user)" {
		t.Errorf("id user in the rootfs: %s %v", out, err)
	}
	cmd = exec.Command("/data/run.sh")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "hi\n" {
		t.Errorf("script in the rootfs: %q %v", out, err)
	}
}

func TestBuildACIFilesOverrideDefaults(t *testing.T) {
	t.Parallel()
	passwd := "root:x:0:0::/:/bin/sh\nbob:x:42:42::/:/bin/sh\n"
	p := BuildACI(t, AppSpec{Name: "custom", Exec: []string{"/bin/true"}, Files: map[string]string{"/etc/passwd": passwd}})
	d := t.TempDir()
	if _, err := renderACI(p, d); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(d, "rootfs/etc/passwd")); string(b) != passwd {
		t.Errorf("etc/passwd not overridden:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(d, "rootfs/etc/group")); string(b) != defaultGroup {
		t.Errorf("etc/group should keep its default:\n%s", b)
	}
	var im schema.ImageManifest
	b, _ := os.ReadFile(filepath.Join(d, "manifest"))
	if err := json.Unmarshal(b, &im); err != nil || im.App.User != "0" || im.App.Group != "0" {
		t.Errorf("user/group should default to 0: %+v %v", im.App, err)
	}
}

func TestRenderRefusesEscapes(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := newACIWriter(&buf)
	w.File("manifest", 0o644, []byte("{}"))
	w.Symlink("rootfs/evil", "/")
	w.File("rootfs/evil/pwned", 0o644, []byte("x"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "evil.aci")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := renderACI(p, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("render through a symlink: %v", err)
	}
	if _, err := os.Stat("/pwned"); err == nil {
		t.Fatal("extraction escaped through a symlink and wrote /pwned")
	}
}

// A host program copied with HostBinaries runs in the rootfs with no help
// from the host's libraries.
func TestBuildACIHostBinaries(t *testing.T) {
	t.Parallel()
	const prog = "/usr/bin/env"
	p := BuildACI(t, AppSpec{Name: "hostbin", Exec: []string{prog}, HostBinaries: []string{prog}})
	d := t.TempDir()
	if _, err := renderACI(p, d); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(d, "rootfs")
	for _, f := range []string{prog, "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"} {
		if st, err := os.Stat(filepath.Join(rootfs, f)); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s in the rootfs: %v", f, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	cmd := exec.Command(prog, "-i", "X=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "X=1\n" {
		t.Errorf("%s in the rootfs: %q %v", prog, out, err)
	}
	if _, err := testImage(AppSpec{Name: "rel", Exec: []string{"/x"}, HostBinaries: []string{"usr/bin/env"}}); err == nil {
		t.Error("a relative host binary path should be refused")
	}
}
