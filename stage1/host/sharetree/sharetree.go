// Package sharetree builds the pod share on the host: a small read-only
// tmpfs holding bind mounts of exactly the directories the guest may see
// (the table in stage1/contract/shares.go). QEMU exports that one tree, so
// the guest reaches nothing else of the host, and what it may only read is
// read-only in the host kernel itself.
package sharetree

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/mountpoint"
)

// ErrInvalid wraps a bad entry.
var ErrInvalid = errors.New("invalid share entry")

// Entry is one directory of the tree: a bind mount of Source at Path.
type Entry struct {
	// Path is relative to the tree's root: clean, without "..".
	Path   string
	Source string
	// ReadOnly: the whole bind, submounts included, is read-only.
	ReadOnly bool
	// Recursive: mounts below Source are visible too (rkt's default for
	// host volumes); otherwise the bind shows Source's own file system
	// only, and later mounts on either side do not propagate.
	Recursive bool
}

// Validate checks e's paths.
func (e Entry) Validate() error {
	if e.Path == "" || path.Clean(e.Path) != e.Path || path.IsAbs(e.Path) || e.Path == ".." || strings.HasPrefix(e.Path, "../") {
		return fmt.Errorf("%w: path %q is not clean and relative", ErrInvalid, e.Path)
	}
	if !filepath.IsAbs(e.Source) {
		return fmt.Errorf("%w: source %q of %s is not absolute", ErrInvalid, e.Source, e.Path)
	}
	return nil
}

// bindAttrs are set on every bind: nothing on a share is run or opened as
// a device on the host's side, whatever the guest puts there.
const bindAttrs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC

// Build makes root the tree of entries. On failure it removes what it made.
func Build(root string, entries []Entry) (err error) {
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=1m"); err != nil {
		return fmt.Errorf("mount the share's tmpfs on %s: %w", root, err)
	}
	defer func() {
		if err != nil {
			Remove(root)
		}
	}()
	// Private: the binds below must not propagate anywhere else.
	if err := unix.Mount("", root, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", root, err)
	}
	for _, e := range entries {
		if err := bind(root, e); err != nil {
			return err
		}
	}
	// The tree itself: the guest cannot add anything beside the binds.
	if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("make %s read-only: %w", root, err)
	}
	return nil
}

// bind mounts e.Source at root/e.Path with e's attributes.
func bind(root string, e Entry) error {
	st, err := os.Lstat(e.Source)
	if err != nil {
		return fmt.Errorf("share %s: %w", e.Path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%w: source %s of %s is not a directory", ErrInvalid, e.Source, e.Path)
	}
	dst := filepath.Join(root, e.Path)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND)
	if e.Recursive {
		flags |= unix.MS_REC
	}
	if err := unix.Mount(e.Source, dst, "", flags, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", e.Source, dst, err)
	}
	if !e.Recursive {
		if err := unix.Mount("", dst, "", unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make %s private: %w", dst, err)
		}
	}
	attr := &unix.MountAttr{Attr_set: bindAttrs}
	if e.ReadOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(-1, dst, unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("set the attributes of %s: %w", dst, err)
	}
	return nil
}

// Remove detaches the tree, binds and all, and removes root. No tree, or
// no root, is no error: run's undo and gc both call it.
func Remove(root string) error {
	return mountpoint.Remove(root)
}
