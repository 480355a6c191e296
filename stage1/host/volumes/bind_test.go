package volumes

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBindTopHidesSubmounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	src, pod := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "top"), []byte("top"), 0o644)
	sub := filepath.Join(src, "sub")
	os.Mkdir(sub, 0o755)
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	os.WriteFile(filepath.Join(sub, "inner"), []byte("inner"), 0o644)

	if subs, _ := mountsBelow(src); len(subs) != 1 {
		t.Fatalf("mountsBelow(%s) = %v", src, subs)
	}
	dst := filepath.Join(pod, "vm/volumes/vol-0")
	if err := BindTop(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "top")); err != nil || string(b) != "top" {
		t.Errorf("top file through the bind: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "sub", "inner")); err == nil {
		t.Error("the submount shows through the non-recursive bind")
	}
	if subs, _ := mountsBelow(dst); len(subs) != 0 {
		t.Errorf("mounts below the bind: %v", subs)
	}
	// gc's way: everything under the directory, twice (idempotent).
	for i := 0; i < 2; i++ {
		if err := UnbindAll(filepath.Join(pod, "vm/volumes")); err != nil {
			t.Fatalf("UnbindAll #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(filepath.Join(pod, "vm/volumes")); !os.IsNotExist(err) {
		t.Errorf("bind directory left: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(src, "top")); err != nil || string(b) != "top" {
		t.Errorf("the source suffered: %q, %v", b, err)
	}
}
