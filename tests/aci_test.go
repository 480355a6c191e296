package tests

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/aci"
	"github.com/appc/spec/schema"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// TestACIValid checks the built stage1-kvm.aci with appc/spec's own ACI
// layout validator and manifest schema, then what rkt needs of a stage1.
func TestACIValid(t *testing.T) {
	path := harness.ACI(t)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := aci.ValidateArchive(tar.NewReader(f)); err != nil {
		t.Fatalf("appc rejects the ACI: %v", err)
	}

	entries := map[string]*tar.Header{}
	var manifest []byte
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		entries[strings.TrimSuffix(h.Name, "/")] = h
		if h.Name == "manifest" {
			manifest, _ = io.ReadAll(tr)
		}
	}
	var im schema.ImageManifest
	if err := json.Unmarshal(manifest, &im); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if v, _ := im.Annotations.Get("coreos.com/rkt/stage1/interface-version"); v == "" {
		t.Error("no interface-version annotation")
	}
	for _, l := range []string{"version", "os", "arch"} {
		if v, ok := im.Labels.Get(l); !ok || v == "" {
			t.Errorf("label %s missing", l)
		}
	}
	declared := 0
	for _, ep := range contract.EntryPoints {
		v, ok := im.Annotations.Get("coreos.com/rkt/stage1/" + ep.Name)
		if !ok {
			continue
		}
		declared++
		h := entries["rootfs"+v]
		if h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
			t.Errorf("entry point %s -> %s is not an executable file in the rootfs", ep.Name, v)
		}
	}
	if _, ok := im.Annotations.Get("coreos.com/rkt/stage1/run"); !ok {
		t.Error("no run entry point")
	}
	// Every entry-point file in the rootfs is declared, and vice versa.
	for _, ep := range contract.EntryPoints {
		_, inTar := entries["rootfs/"+ep.File]
		_, annotated := im.Annotations.Get("coreos.com/rkt/stage1/" + ep.Name)
		if inTar != annotated {
			t.Errorf("entry point %s: file present %v, annotation present %v", ep.Name, inTar, annotated)
		}
	}
	if h := entries["rootfs/"+contract.StatusDir]; h == nil || h.Typeflag != tar.TypeDir {
		t.Error("rootfs/rkt/status/ directory missing (rkt requires it)")
	}
	for _, want := range []string{contract.Kernel, contract.GuestImage,
		"qemu/bin/qemu-system-x86_64", "qemu/lib/ld-linux-x86-64.so.2", "qemu/lib/libc.so.6",
		"qemu/share/qboot.rom", "qemu/bin/virtiofsd"} {
		if entries["rootfs/"+want] == nil {
			t.Errorf("rootfs/%s missing", want)
		}
	}
	t.Logf("%d entry points declared", declared)
}

// TestBundledQEMURunsAlone runs the ACI's QEMU with an empty environment and
// no host library path: everything it loads comes from the image.
func TestBundledQEMURunsAlone(t *testing.T) {
	dir := t.TempDir()
	if err := harness.Unpack(harness.ACI(t), dir); err != nil {
		t.Fatal(err)
	}
	b := qemu.Bundled(filepath.Join(dir, "rootfs"))
	// Our QEMU is static: no loader, no library from anywhere.
	f, err := elf.Open(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("bundled QEMU asks for a dynamic loader; it must be static")
		}
	}
	f.Close()
	// virtiofsd (Debian's) runs through the bundled loader and libraries.
	cmd := exec.Command(b.Loader, "--list", "--library-path", b.LibDir, b.VirtioFSD)
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("loader --list virtiofsd: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "=> "); i >= 0 {
			lib := strings.Fields(line[i+3:])
			if len(lib) > 0 && !strings.HasPrefix(lib[0], b.LibDir) {
				t.Errorf("virtiofsd loads a library from outside the image: %s", line)
			}
		}
	}
	// Our own build (qemu/build.sh) runs with an empty environment: TCG
	// built in, and every device the stage1 uses.
	for _, q := range []struct{ arg, want string }{
		{"-version", "QEMU emulator version"},
		{"-accel help", "tcg"},
		{"-accel help", "kvm"},
		{"-device help", `"virtio-9p-device"`},
		{"-device help", `"vhost-user-fs-device"`},
		{"-device help", `"virtio-net-device"`},
		{"-device help", `"virtio-balloon-device"`},
		{"-device help", `"virtserialport"`},
		{"-machine help", "microvm"},
	} {
		cmd = exec.Command(b.Path, append([]string{"-L", b.DataDir}, strings.Fields(q.arg)...)...)
		cmd.Env = []string{}
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte(q.want)) {
			t.Errorf("bundled QEMU %s: no %s (%v)\n%s", q.arg, q.want, err, out)
		}
	}
}

// TestKernelIsPVH checks the kernel carries the PVH entry note QEMU uses to
// boot an uncompressed vmlinux directly (pods boot the same kernel as a
// bzImage; the vmlinux stays for direct boots while debugging).
func TestKernelIsPVH(t *testing.T) {
	f, err := elf.Open(filepath.Join(harness.BuildDir(t), "vmlinux"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const xenElfnotePhys32Entry = 18
	found := false
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			t.Fatal(err)
		}
		for len(b) >= 12 {
			nsz, dsz, typ := le32(b[0:]), le32(b[4:]), le32(b[8:])
			name := string(bytes.TrimRight(b[12:12+nsz], "\x00"))
			if name == "Xen" && typ == xenElfnotePhys32Entry {
				found = true
			}
			b = b[12+align4(nsz)+align4(dsz):]
		}
	}
	if !found {
		t.Fatal("vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)")
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
func align4(n uint32) uint32 { return (n + 3) &^ 3 }

// TestGuestImageReproducible builds the guest image twice from the same
// inputs and compares the bytes.
func TestGuestImageReproducible(t *testing.T) {
	bin := filepath.Join(harness.BuildDir(t), "bin")
	dir := t.TempDir()
	var sums [2][32]byte
	for i := range sums {
		img := filepath.Join(dir, "guest"+string(rune('a'+i))+".img")
		out, err := exec.Command(filepath.Join(bin, "rootfs-builder"), "image", "-o", img, filepath.Join(bin, "stage1-guest")).CombinedOutput()
		if err != nil {
			t.Fatalf("rootfs-builder image: %v\n%s", err, out)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(b)
	}
	if sums[0] != sums[1] {
		t.Fatalf("two builds of the guest image differ: %x vs %x", sums[0], sums[1])
	}
	// The image make built from the same inputs is the same too.
	b, err := os.ReadFile(filepath.Join(harness.BuildDir(t), "guest.img"))
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(b) != sums[0] {
		t.Fatal("build/guest.img differs from a rebuild with the same inputs")
	}
}
