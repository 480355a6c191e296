package sharetree

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func mounted(t *testing.T, below string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var m []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == below || strings.HasPrefix(f[4], below+"/")) {
			m = append(m, f[4])
		}
	}
	return m
}

func TestBuildAndRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	base := t.TempDir()
	rw, ro, deep := filepath.Join(base, "rw"), filepath.Join(base, "ro"), filepath.Join(base, "deep")
	for _, d := range []string{rw, ro, filepath.Join(deep, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A mount below deep: seen through a recursive bind only.
	if err := unix.Mount("tmpfs", filepath.Join(deep, "sub"), "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(deep, "sub"), unix.MNT_DETACH)
	os.WriteFile(filepath.Join(deep, "sub", "below"), []byte("x"), 0o644)
	root := filepath.Join(base, "share")
	err := Build(root, []Entry{
		{Path: "opt/stage2/a/rootfs", Source: rw},
		{Path: "config", Source: ro, ReadOnly: true},
		{Path: "host/rec", Source: deep, Recursive: true, ReadOnly: true},
		{Path: "host/flat", Source: deep},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "opt/stage2/a/rootfs/f"), []byte("hi"), 0o644); err != nil {
		t.Errorf("write through a read-write bind: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(rw, "f")); string(b) != "hi" {
		t.Errorf("the write did not reach the source: %q", b)
	}
	for _, p := range []string{"config/f", "host/rec/sub/f", "stray", "opt/new"} {
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("write %s: %v, want EROFS", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "host/rec/sub/below")); err != nil {
		t.Errorf("a recursive bind hides the source's submount: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "host/flat/sub/below")); err == nil {
		t.Error("a non-recursive bind shows the source's submount")
	}
	if err := Remove(root); err != nil {
		t.Fatal(err)
	}
	if m := mounted(t, root); len(m) != 0 {
		t.Errorf("left mounted: %v", m)
	}
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root left behind: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(rw, "f")); string(b) != "hi" {
		t.Error("Remove touched a source")
	}
	if err := Remove(root); err != nil {
		t.Errorf("Remove again: %v", err)
	}
}

func TestBuildFailureLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	base := t.TempDir()
	root := filepath.Join(base, "share")
	err := Build(root, []Entry{{Path: "a", Source: base}, {Path: "b", Source: filepath.Join(base, "missing")}})
	if err == nil {
		t.Fatal("built a tree with a missing source")
	}
	if m := mounted(t, root); len(m) != 0 {
		t.Errorf("left mounted: %v", m)
	}
	for _, bad := range []Entry{{Path: "../x", Source: base}, {Path: "/abs", Source: base}, {Path: "a/../b", Source: base}, {Path: "a", Source: "rel"}} {
		if err := Build(root, []Entry{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}
