package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/mountpoint"
)

// BindTop makes dst a non-recursive, private bind mount of src: it shows
// src's own file system and none of the mounts below src (what a 9p or
// virtiofs share of src itself would show), and later mounts under either
// do not propagate to the other. Undo with Unbind.
func BindTop(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dst)
		return fmt.Errorf("bind %s on %s: %w", src, dst, err)
	}
	if err := unix.Mount("", dst, "", unix.MS_PRIVATE, ""); err != nil {
		return errors.Join(fmt.Errorf("make %s private: %w", dst, err), Unbind(dst))
	}
	return nil
}

// Unbind undoes BindTop; a dst that is already gone is no error.
func Unbind(dst string) error {
	return mountpoint.Remove(dst)
}

// UnbindAll undoes every BindTop below dir, then removes dir: gc's way to
// release them when run could not.
func UnbindAll(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, Unbind(filepath.Join(dir, e.Name())))
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
