// Package fsutil holds the file-system helpers the host and the guest
// share. It is a leaf: it imports nothing of the stage1.
package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFileAtomic replaces path with a file holding data, atomically and
// durably: the data goes to a temporary file in the same directory, which
// is synced and renamed over path, then the directory is synced. A reader
// sees the old content or the whole new one, never a part, and the new one
// survives a crash once WriteFileAtomic has returned. The file gets exactly
// mode (the umask does not apply). A failure before the rename leaves path
// untouched and no temporary file behind.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := writeTemp(dir, base, data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// writeTemp writes data to a new synced file in dir, named after base, and
// returns its path.
func writeTemp(dir, base string, data []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", err
	}
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes a rename in dir durable. File systems that cannot sync a
// directory (some network and FUSE ones) are no error: the rename is done.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !unsupported(err) {
		return err
	}
	return nil
}

func unsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.ENOSYS)
}
