// Package tree stages a file tree (a guest image or an ACI rootfs) in a
// directory, with the usr-merged layout Debian uses, so that paths resolved
// on the build host land where the same programs expect them in the image.
package tree

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/stage1-kvm/stage1-kvm/rootfs-builder/elfdeps"
)

// Tree is a directory being filled.
type Tree struct {
	Root string
}

// UsrMerge creates /bin, /sbin, /lib and /lib64 as links into /usr, as on
// the Debian build host.
func (t Tree) UsrMerge() error {
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := t.Mkdir("usr/"+d, 0o755); err != nil {
			return err
		}
		if err := t.Symlink("usr/"+d, d); err != nil {
			return err
		}
	}
	return nil
}

// Mkdir creates a directory (and its parents) inside the tree.
func (t Tree) Mkdir(rel string, mode os.FileMode) error {
	p := t.path(rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", rel, err)
	}
	return os.Chmod(p, mode)
}

// Symlink creates rel -> target inside the tree.
func (t Tree) Symlink(target, rel string) error {
	p := t.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create parent of %s: %w", rel, err)
	}
	if err := os.Symlink(target, p); err != nil {
		return fmt.Errorf("link %s: %w", rel, err)
	}
	return nil
}

// WriteFile writes data to rel inside the tree.
func (t Tree) WriteFile(rel string, data []byte, mode os.FileMode) error {
	p := t.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create parent of %s: %w", rel, err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return os.Chmod(p, mode)
}

// CopyFile copies the content of src (following symlinks) to rel.
func (t Tree) CopyFile(src, rel string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	p := t.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create parent of %s: %w", rel, err)
	}
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return os.Chmod(p, mode)
}

// CopyFS copies a whole fs.FS (embedded static files) into the tree.
func (t Tree) CopyFS(fsys fs.FS) error {
	return fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == "." {
			return err
		}
		if d.IsDir() {
			return t.Mkdir(path, 0o755)
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		return t.WriteFile(path, data, 0o644)
	})
}

// InstallProgram copies a host program to the place it has on the host
// (symlinks such as /lib -> usr/lib resolved), plus every shared library it
// loads, found by walking its ELF dependencies.
func (t Tree) InstallProgram(hostPath string) error {
	if err := t.installResolved(hostPath, 0o755); err != nil {
		return err
	}
	deps, err := elfdeps.Resolver{}.Resolve(hostPath)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if err := t.installResolved(d.Path, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// installResolved copies hostPath to the same path inside the tree, with
// its directory canonicalised (so /lib64/x lands in usr/lib64/x) but its
// own name kept (the name the loader asks for).
func (t Tree) installResolved(hostPath string, mode os.FileMode) error {
	dir, err := filepath.EvalSymlinks(filepath.Dir(hostPath))
	if err != nil {
		return fmt.Errorf("resolve %s: %w", hostPath, err)
	}
	rel := strings.TrimPrefix(filepath.Join(dir, filepath.Base(hostPath)), "/")
	if _, err := os.Lstat(t.path(rel)); err == nil {
		return nil // already there
	}
	return t.CopyFile(hostPath, rel, mode)
}

func (t Tree) path(rel string) string {
	return filepath.Join(t.Root, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
}
