package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pid")
	for _, c := range []struct {
		data string
		mode os.FileMode
	}{
		{"1234", 0o600}, // a new file
		{"56", 0o644},   // replaces a longer one: no old bytes remain
	} {
		if err := WriteFileAtomic(p, []byte(c.data), c.mode); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != c.data {
			t.Errorf("content %q, %v; want %q", b, err, c.data)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != c.mode {
			t.Errorf("mode %v, %v; want %v", fi.Mode().Perm(), err, c.mode)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestWriteFileAtomicRelative(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := WriteFileAtomic("net-info.json", []byte("[]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("net-info.json"); err != nil || string(b) != "[]\n" {
		t.Errorf("content %q, %v", b, err)
	}
}

func TestWriteFileAtomicFailure(t *testing.T) {
	dir := t.TempDir()
	// The target is a non-empty directory: the rename fails.
	p := filepath.Join(dir, "busy")
	if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("x"), 0o644); err == nil {
		t.Fatal("no error replacing a non-empty directory")
	}
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		t.Errorf("target changed: %v, %v", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644); err == nil {
		t.Error("no error writing into a missing directory")
	}
}
