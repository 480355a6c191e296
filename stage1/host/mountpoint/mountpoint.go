// Package mountpoint releases the mount points the stage1 makes on the host
// (volume binds, pinned network namespaces).
package mountpoint

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Remove detaches whatever is mounted at path and removes path. Nothing
// mounted, or no path at all, is no error: release steps run again after a
// partial failure, and gc repeats run's.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}
