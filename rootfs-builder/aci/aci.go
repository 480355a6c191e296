// Package aci assembles stage1-kvm.aci: the image manifest rkt reads to find
// our entry points, and a rootfs holding those entry points, the guest
// kernel, the guest OS image and a QEMU that runs without anything installed
// on the host (its own loader, libraries and firmware).
package aci

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/rootfs-builder/elfdeps"
	"github.com/stage1-kvm/stage1-kvm/rootfs-builder/tree"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// Name is the image name users pass to rkt's --stage1-name.
const Name = "github.com/stage1-kvm/stage1-kvm"

// InterfaceVersion is the stage1 interface version we implement; rkt passes
// the flags of that version (see docs/architecture.md).
const InterfaceVersion = "6"

const annotationPrefix = "coreos.com/rkt/stage1/"

// Config is what goes into the ACI.
type Config struct {
	Version string
	// EntryPoints maps an entry point name ("run", "enter", ...) to the
	// host binary to install; only those given are declared.
	EntryPoints map[string]string
	// Jailer is the program that confines QEMU and virtiofsd
	// (contract.Jailer in the rootfs).
	Jailer     string
	Kernel     string
	GuestImage string
	// QEMU is our static qemu-system-x86_64 (qemu/build.sh).
	QEMU string
	// QEMUFirmware are firmware files QEMU loads (qboot.rom, microvm's default BIOS).
	QEMUFirmware []string
	// VirtioFSD is the host's virtiofsd (Debian's), for virtiofs shares;
	// it runs through the bundled loader and libraries.
	VirtioFSD string
	// NetPlugins are CNI plugin binaries, installed in net-plugins/ (the
	// pod's networks run them on the host).
	NetPlugins []string
	Output     string
}

// Manifest is the image manifest for c. It is pure: no file is read.
func Manifest(c Config) (*schema.ImageManifest, error) {
	name, err := types.NewACIdentifier(Name)
	if err != nil {
		return nil, err
	}
	m := schema.BlankImageManifest()
	m.Name = *name
	if c.Version == "" {
		return nil, fmt.Errorf("no version")
	}
	labels, err := types.LabelsFromMap(map[types.ACIdentifier]string{"version": c.Version, "os": "linux", "arch": "amd64"})
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	m.Labels = labels
	if _, ok := c.EntryPoints["run"]; !ok {
		return nil, fmt.Errorf("the run entry point is required")
	}
	known := map[string]bool{}
	for _, ep := range contract.EntryPoints {
		known[ep.Name] = true
		if _, ok := c.EntryPoints[ep.Name]; ok {
			m.Annotations.Set(types.ACIdentifier(annotationPrefix+ep.Name), "/"+ep.File)
		}
	}
	for n := range c.EntryPoints {
		if !known[n] {
			return nil, fmt.Errorf("unknown entry point %q", n)
		}
	}
	m.Annotations.Set(types.ACIdentifier(annotationPrefix+"interface-version"), InterfaceVersion)
	return m, nil
}

// Build stages the rootfs and writes the ACI.
func Build(c Config) error {
	m, err := Manifest(c)
	if err != nil {
		return err
	}
	staging, err := os.MkdirTemp("", "stage1-aci.")
	if err != nil {
		return fmt.Errorf("create staging dir: %w", err)
	}
	defer os.RemoveAll(staging)
	if err := stageRootfs(c, tree.Tree{Root: filepath.Join(staging, "rootfs")}); err != nil {
		return err
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(staging, "manifest"), mb, 0o644); err != nil {
		return err
	}
	tmp := c.Output + ".tmp"
	if err := writeTar(staging, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, c.Output)
}

func stageRootfs(c Config, t tree.Tree) error {
	if err := t.Mkdir(contract.StatusDir, 0o755); err != nil {
		return err
	}
	for _, ep := range contract.EntryPoints {
		if src, ok := c.EntryPoints[ep.Name]; ok {
			if err := t.CopyFile(src, ep.File, 0o755); err != nil {
				return err
			}
		}
	}
	if err := t.CopyFile(c.Jailer, contract.Jailer, 0o755); err != nil {
		return err
	}
	if err := t.CopyFile(c.Kernel, contract.Kernel, 0o644); err != nil {
		return err
	}
	if err := t.CopyFile(c.GuestImage, contract.GuestImage, 0o644); err != nil {
		return err
	}
	for _, p := range c.NetPlugins {
		if err := t.CopyFile(p, NetPluginsDir+"/"+filepath.Base(p), 0o755); err != nil {
			return err
		}
	}
	if err := stageQEMU(c, t); err != nil {
		return err
	}
	return writeVMContents(t)
}

// writeVMContents records the digest of every file the VM is made of
// (contract.VMContents), in a fixed order (WalkDir's is lexical).
func writeVMContents(t tree.Tree) error {
	var lines []string
	add := func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("digest %s: %w", p, err)
		}
		rel, err := filepath.Rel(t.Root, p)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%x  %s", h.Sum(nil), filepath.ToSlash(rel)))
		return nil
	}
	for _, rel := range []string{contract.Kernel, contract.GuestImage, contract.QEMUDir} {
		if err := filepath.WalkDir(filepath.Join(t.Root, rel), add); err != nil {
			return fmt.Errorf("VM contents: %w", err)
		}
	}
	return t.WriteFile(contract.VMContents, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// NetPluginsDir is where the CNI plugins go in the rootfs (the network
// package's PluginsDir).
const NetPluginsDir = "net-plugins"

// stageQEMU puts QEMU, every library it loads and the loader itself in one
// flat directory, so it runs through that loader with --library-path and
// never touches the host's libraries.
func stageQEMU(c Config, t tree.Tree) error {
	q := contract.QEMUDir
	if err := t.CopyFile(c.QEMU, q+"/bin/qemu-system-x86_64", 0o755); err != nil {
		return err
	}
	programs := []string{c.QEMU}
	if c.VirtioFSD != "" {
		if err := t.CopyFile(c.VirtioFSD, q+"/bin/virtiofsd", 0o755); err != nil {
			return err
		}
		programs = append(programs, c.VirtioFSD)
	}
	deps, err := elfdeps.Resolver{}.Resolve(programs...)
	if err != nil {
		return fmt.Errorf("QEMU libraries: %w", err)
	}
	for _, d := range deps {
		if err := t.CopyFile(d.Path, q+"/lib/"+filepath.Base(d.Path), 0o755); err != nil {
			return err
		}
	}
	if err := t.Mkdir(q+"/share", 0o755); err != nil {
		return err
	}
	for _, fw := range c.QEMUFirmware {
		if err := t.CopyFile(fw, q+"/share/"+filepath.Base(fw), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeTar writes dir as a tar with sorted entries, root ownership and a
// fixed time, so the same inputs give the same bytes.
func writeTar(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	var paths []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	epoch := time.Unix(0, 0)
	for _, p := range paths {
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if st.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(st, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(strings.TrimPrefix(p, dir+"/"))
		if st.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "root", "root"
		h.ModTime, h.AccessTime, h.ChangeTime = epoch, time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if st.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				return fmt.Errorf("archive %s: %w", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
