package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/template"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// podVM is the VM of a pod in podDir, whose stage1 rootfs (with real
// files, for their identity) is root.
func podVM(t *testing.T, root, podDir string, memory int, mac string) qemu.Config {
	in := testInput()
	in.podDir, in.stage1Rootfs, in.memoryMiB = podDir, root, memory
	tap, _ := os.Open(os.DevNull)
	in.taps = []qemu.Tap{{File: tap, MAC: mac}}
	return vmConfig(in)
}

func stage1Files(t *testing.T) string {
	root := t.TempDir()
	for _, f := range []string{"bzImage", "guest.img", "qemu/bin/qemu-system-x86_64", "qemu/share/qboot.rom"} {
		p := filepath.Join(root, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// Two pods of one shape have one template, whatever their directories,
// names and MACs; memory, and a changed kernel, make another.
func TestTemplateShape(t *testing.T) {
	root := stage1Files(t)
	key := func(c qemu.Config) string {
		shape, err := templateShape(c)
		if err != nil {
			t.Fatal(err)
		}
		return template.Key(shape...)
	}
	a := key(podVM(t, root, "/var/lib/rkt/pods/run/a", 160, "0a:58:0a:01:00:02"))
	b := key(podVM(t, root, "/var/lib/rkt/pods/run/b", 160, "0a:58:0a:01:00:03"))
	if a != b {
		t.Errorf("two pods of one shape: keys %s and %s", a, b)
	}
	if c := key(podVM(t, root, "/var/lib/rkt/pods/run/a", 192, "0a:58:0a:01:00:02")); c == a {
		t.Error("more memory, same template")
	}
	if err := os.WriteFile(filepath.Join(root, "bzImage"), []byte("another kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d := key(podVM(t, root, "/var/lib/rkt/pods/run/a", 160, "0a:58:0a:01:00:02")); d == a {
		t.Error("another kernel, same template")
	}
}

func TestTemplateShapeRefuses(t *testing.T) {
	root := stage1Files(t)
	host := podVM(t, root, "/p", 160, "0a:58:0a:01:00:02")
	host.Binary.Bundled = false
	vfs := podVM(t, root, "/p", 160, "0a:58:0a:01:00:02")
	vfs.Shares[0].Transport, vfs.Shares[0].Socket = qemu.Virtiofs, "/p/fs.sock"
	for name, c := range map[string]qemu.Config{"host QEMU": host, "virtiofs": vfs} {
		if _, err := templateShape(c); !errors.Is(err, ErrNotTemplatable) {
			t.Errorf("%s: %v, want ErrNotTemplatable", name, err)
		}
	}
}

// QEMU's messages during a restore are held: on failure they go into the
// one-line notice; once the clone runs, they and what follows pass on.
func TestHeldWriter(t *testing.T) {
	var out strings.Builder
	h := &heldWriter{w: &out}
	h.Write([]byte("qemu: Not a migration stream\nqemu: load failed\n"))
	if out.Len() != 0 {
		t.Fatalf("written before release: %q", out.String())
	}
	if got := h.held(); got != "qemu: Not a migration stream; qemu: load failed" {
		t.Errorf("held() = %q", got)
	}
	h.Write(make([]byte, 2*maxHeld))
	if h.buf.Len() > maxHeld {
		t.Errorf("held %d bytes, bound %d", h.buf.Len(), maxHeld)
	}
	h.release()
	h.Write([]byte("later\n"))
	if !strings.HasPrefix(out.String(), "qemu: Not a migration stream\n") || !strings.HasSuffix(out.String(), "later\n") {
		t.Errorf("after release: %q", out.String())
	}
}
