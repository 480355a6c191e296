package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-multierror"
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
		err = fmt.Errorf("make %s private: %w", dst, err)
		if uerr := Unbind(dst); uerr != nil {
			return multierror.Append(err, uerr)
		}
		return err
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
	var errs *multierror.Error
	for _, e := range entries {
		if err := Unbind(filepath.Join(dir, e.Name())); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = multierror.Append(errs, err)
	}
	return errs.ErrorOrNil()
}
