package elfdeps

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolveSystemd(t *testing.T) {
	const systemd = "/lib/systemd/systemd"
	if _, err := os.Stat(systemd); err != nil {
		t.Skip("systemd not installed")
	}
	deps, err := Resolver{}.Resolve(systemd)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	interp := 0
	for _, d := range deps {
		names[filepath.Base(d.Path)] = true
		if d.Interpreter {
			interp++
		}
	}
	// libsystemd-shared is found only through systemd's RUNPATH, libseccomp
	// only transitively through libsystemd-shared.
	for _, want := range []string{"libsystemd-shared-252.so", "libseccomp.so.2", "libc.so.6", "ld-linux-x86-64.so.2"} {
		if !names[want] {
			t.Errorf("missing %s in %v", want, deps)
		}
	}
	if interp != 1 {
		t.Errorf("want exactly one interpreter, got %d", interp)
	}
}

func TestResolveMissingLibrary(t *testing.T) {
	_, err := Resolver{SearchPath: []string{t.TempDir()}}.Resolve("/bin/true")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
}

func TestResolveNotELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := (Resolver{}).Resolve(p); err == nil {
		t.Fatal("want an error for a non-ELF file")
	}
}

func TestExpandOrigin(t *testing.T) {
	got := expandOrigin([]string{"$ORIGIN/../lib", "${ORIGIN}/x", "/abs"}, "/opt/app/bin/prog")
	want := []string{"/opt/app/bin/../lib", "/opt/app/bin/x", "/abs"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("expandOrigin[%d] = %q, want %q", i, got[i], want[i])
		}
	}
}
