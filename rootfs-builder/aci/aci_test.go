package aci

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema"

	"github.com/stage1-kvm/stage1-kvm/rootfs-builder/tree"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

func TestManifest(t *testing.T) {
	m, err := Manifest(Config{Version: "1.2.3", EntryPoints: map[string]string{"run": "x", "gc": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	// Round trip through appc's own validating decoder.
	var back schema.ImageManifest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("appc rejects our manifest: %v", err)
	}
	for k, want := range map[string]string{
		"coreos.com/rkt/stage1/run":               "/init",
		"coreos.com/rkt/stage1/gc":                "/gc",
		"coreos.com/rkt/stage1/interface-version": "6",
	} {
		if got, ok := back.Annotations.Get(k); !ok || got != want {
			t.Errorf("annotation %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := back.Annotations.Get("coreos.com/rkt/stage1/enter"); ok {
		t.Error("enter is declared but was not given")
	}
	if v, _ := back.Labels.Get("version"); v != "1.2.3" {
		t.Errorf("version label %q", v)
	}
}

func TestManifestErrors(t *testing.T) {
	if _, err := Manifest(Config{Version: "1", EntryPoints: map[string]string{"gc": "y"}}); err == nil {
		t.Error("want an error without a run entry point")
	}
	if _, err := Manifest(Config{Version: "1", EntryPoints: map[string]string{"run": "x", "dance": "y"}}); err == nil {
		t.Error("want an error for an unknown entry point")
	}
}

// The VM's files are listed with their SHA-256, kernel and image first,
// then QEMU's tree in lexical order; nothing else of the rootfs.
func TestWriteVMContents(t *testing.T) {
	tr := tree.Tree{Root: t.TempDir()}
	for rel, data := range map[string]string{
		contract.Kernel: "k", contract.GuestImage: "i", "qemu/bin/qemu-system-x86_64": "q",
		"qemu/share/qboot.rom": "b", "run": "not the VM's",
	} {
		if err := tr.WriteFile(rel, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeVMContents(tr); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(tr.Root, contract.VMContents))
	if err != nil {
		t.Fatal(err)
	}
	sum := func(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }
	want := sum("k") + "  bzImage\n" + sum("i") + "  guest.img\n" +
		sum("q") + "  qemu/bin/qemu-system-x86_64\n" + sum("b") + "  qemu/share/qboot.rom\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
