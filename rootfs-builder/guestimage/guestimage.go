// Package guestimage builds the guest OS image: a read-only erofs file
// system holding systemd, journald, systemctl, the shared libraries they load,
// our guest programs and a minimal /etc. Every pod boots the same file.
package guestimage

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/stage1-kvm/stage1-kvm/rootfs-builder/tree"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/units"
)

//go:embed all:guestfs
var static embed.FS

// Host programs installed in the image, with their libraries.
var hostPrograms = []string{
	"/lib/systemd/systemd",
	"/lib/systemd/systemd-journald",
	"/lib/systemd/systemd-shutdown",
	"/bin/systemctl",
}

// Unit files taken unchanged from the build host's systemd package (the
// journal service itself is our own, in guestfs).
var hostUnits = []string{
	"systemd-journald.socket",
	"systemd-journald-dev-log.socket",
}

const hostUnitDir = "/lib/systemd/system"

// unitDir is the image's unit directory, relative to its root.
const unitDir = "usr/lib/systemd/system"

// Fixed metadata so the same inputs give the same image bytes.
const (
	imageUUID = "5e7a9e1d-0000-4000-8000-000000000001"
	imageTime = "0"
)

// Config says what goes in the image.
type Config struct {
	// GuestPrograms are our static guest binaries, copied to
	// contract.GuestProgramDir/<base name> (so stage1-guest becomes
	// contract.GuestProgram).
	GuestPrograms []string
	// Output is the image file to write.
	Output string
}

// Build stages the tree in a temporary directory and writes the image.
func Build(c Config) error {
	staging, err := os.MkdirTemp("", "stage1-guest-image.")
	if err != nil {
		return fmt.Errorf("create staging dir: %w", err)
	}
	defer os.RemoveAll(staging)
	if err := Stage(tree.Tree{Root: staging}, c.GuestPrograms); err != nil {
		return err
	}
	return MakeErofs(staging, c.Output)
}

// Stage fills t with the guest OS.
func Stage(t tree.Tree, guestPrograms []string) error {
	if err := t.UsrMerge(); err != nil {
		return err
	}
	// Mount points: our pre-init mounts /sys, /dev, /run, /tmp and /var,
	// systemd mounts /proc; /pod receives the pod's shared directory.
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var", "pod", "root"} {
		if err := t.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	sub, err := fs.Sub(static, "guestfs")
	if err != nil {
		return err
	}
	if err := t.CopyFS(sub); err != nil {
		return fmt.Errorf("copy static guest files: %w", err)
	}
	for _, p := range hostPrograms {
		if err := t.InstallProgram(p); err != nil {
			return fmt.Errorf("install %s: %w", p, err)
		}
	}
	for _, u := range hostUnits {
		if err := t.CopyFile(hostUnitDir+"/"+u, unitDir+"/"+u, 0o644); err != nil {
			return err
		}
	}
	// Units made by the same code as the pods' units.
	for _, g := range []struct {
		what string
		unit func() (units.File, error)
	}{{"warm-up app's unit", units.WarmApp}, {"I/O forwarder's unit", units.IOService}} {
		u, err := g.unit()
		if err != nil {
			return fmt.Errorf("%s: %w", g.what, err)
		}
		if err := t.WriteFile(unitDir+"/"+u.Name, u.Content, 0o644); err != nil {
			return err
		}
	}
	for _, p := range guestPrograms {
		if err := t.CopyFile(p, contract.GuestProgramDir+"/"+filepath.Base(p), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// MakeErofs packs dir into an uncompressed erofs image. Uncompressed keeps
// guest reads cheap under emulation, and lets the host page cache share one
// copy of every file between all pods.
func MakeErofs(dir, out string) error {
	tmp := out + ".tmp"
	cmd := exec.Command("mkfs.erofs", "--quiet", "--all-root", "-T"+imageTime, "-U"+imageUUID, tmp, dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mkfs.erofs: %w: %s", err, b)
	}
	return os.Rename(tmp, out)
}
