package supervisor

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
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

const contents = "1b4f0e98  bzImage\n2c26b46b  guest.img\n"

// Two pods of one shape have one template, whatever their directories,
// names and MACs; memory, and changed contents (a rebuilt guest image of
// the same size and time), make another.
func TestTemplateShape(t *testing.T) {
	root := "/var/lib/rkt/pods/run/a/stage1/rootfs"
	keyOf := func(c qemu.Config, contents string) string {
		shape, err := templateShape(c, []byte(contents))
		if err != nil {
			t.Fatal(err)
		}
		return template.Key(shape...)
	}
	key := func(c qemu.Config) string { return keyOf(c, contents) }
	a := key(podVM(t, root, "/var/lib/rkt/pods/run/a", 160, "0a:58:0a:01:00:02"))
	b := key(podVM(t, root, "/var/lib/rkt/pods/run/b", 160, "0a:58:0a:01:00:03"))
	if a != b {
		t.Errorf("two pods of one shape: keys %s and %s", a, b)
	}
	if c := key(podVM(t, root, "/var/lib/rkt/pods/run/a", 192, "0a:58:0a:01:00:02")); c == a {
		t.Error("more memory, same template")
	}
	if d := keyOf(podVM(t, root, "/var/lib/rkt/pods/run/a", 160, "0a:58:0a:01:00:02"), "1b4f0e98  bzImage\n9f86d081  guest.img\n"); d == a {
		t.Error("another guest image, same template")
	}
}

func TestTemplateShapeRefuses(t *testing.T) {
	root := "/p/stage1/rootfs"
	host := podVM(t, root, "/p", 160, "0a:58:0a:01:00:02")
	host.Binary.Bundled = false
	vfs := podVM(t, root, "/p", 160, "0a:58:0a:01:00:02")
	vfs.Shares[0].Transport, vfs.Shares[0].Socket = qemu.Virtiofs, "/p/fs.sock"
	for name, c := range map[string]qemu.Config{"host QEMU": host, "virtiofs": vfs} {
		if _, err := templateShape(c, []byte(contents)); !errors.Is(err, ErrNotTemplatable) {
			t.Errorf("%s: %v, want ErrNotTemplatable", name, err)
		}
	}
	if _, err := templateShape(podVM(t, root, "/p", 160, "0a:58:0a:01:00:02"), nil); !errors.Is(err, ErrNotTemplatable) {
		t.Errorf("no contents: %v, want ErrNotTemplatable", err)
	}
}

// The digests file is read whole, within its bound; a stage1 without one
// (or with one too long) has no templates.
func TestReadVMContents(t *testing.T) {
	root := t.TempDir()
	if _, err := readVMContents(root); !errors.Is(err, ErrNotTemplatable) {
		t.Errorf("missing: %v, want ErrNotTemplatable", err)
	}
	p := filepath.Join(root, contract.VMContents)
	os.WriteFile(p, []byte(contents), 0o644)
	if b, err := readVMContents(root); err != nil || string(b) != contents {
		t.Errorf("read %q, %v", b, err)
	}
	os.WriteFile(p, make([]byte, contract.MaxVMContents+1), 0o644)
	if _, err := readVMContents(root); !errors.Is(err, ErrNotTemplatable) {
		t.Errorf("over the bound: %v, want ErrNotTemplatable", err)
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

// The template VM's events: the end of the kernel's boot is passed on
// (the host then empties the translation cache), lines that are not
// events are skipped, and the template point ends the wait.
func TestAwaitTemplatePoint(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("unix", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("kernel-booted\nnot an event\nready\ntemplate-point\n"))
		io.Copy(io.Discard, c)
	}()
	booted := 0
	conn, err := awaitTemplatePoint(ln, 10*time.Second, func() { booted++ })
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if booted != 1 {
		t.Errorf("kernel-booted passed on %d times, want once", booted)
	}
}

// The VM making a template is the pod's, but for its files (in the
// template's directory) and one kernel argument telling the guest to warm
// up what its clones will run; the pod's own configuration is untouched.
func TestTemplateVM(t *testing.T) {
	cfg := podVM(t, "/p/stage1/rootfs", "/p", 160, "0a:58:0a:01:00:02")
	podCmdline := slices.Clone(cfg.Cmdline)
	// A store whose path is too long for a socket's works all the same.
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	socks := t.TempDir()
	m, listeners, err := templateVM(cfg, dir, socks)
	for _, ln := range listeners {
		defer ln.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(podCmdline), contract.MakingTemplateParam+"=1")
	if !slices.Equal(m.Cmdline, want) {
		t.Errorf("template VM's command line = %q, want %q", m.Cmdline, want)
	}
	if !slices.Equal(cfg.Cmdline, podCmdline) {
		t.Errorf("the pod's command line changed: %q", cfg.Cmdline)
	}
	if m.RAMFile != filepath.Join(dir, template.RAMFile) || !m.RAMShared {
		t.Errorf("RAM file %q shared=%v", m.RAMFile, m.RAMShared)
	}
	for _, sh := range m.Shares {
		if filepath.Dir(sh.Path) != dir {
			t.Errorf("share %s at %s, outside the template's directory", sh.Tag, sh.Path)
		}
	}
	if len(listeners) != len(cfg.Ports) {
		t.Errorf("%d listening sockets for %d ports", len(listeners), len(cfg.Ports))
	}
	for _, p := range m.Ports {
		if filepath.Dir(p.Socket) != socks {
			t.Errorf("port %s's socket at %s, not in %s", p.Name, p.Socket, socks)
		}
	}
	if filepath.Dir(m.QMPSocket) != socks {
		t.Errorf("QMP socket at %s, not in %s", m.QMPSocket, socks)
	}
}
