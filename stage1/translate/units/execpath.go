package units

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/volplan"
)

// resolveExecutable makes an app's executable absolute. appc leaves a bare
// name to be found in the app's PATH, and rkt searched that PATH inside the
// app's rootfs; systemd would search the guest's own directories instead,
// so the search happens here. The first regular file with an execute bit
// wins. An absolute path must be such a file too (checkExecutable). A
// relative path with a slash ("bin/app") has no agreed meaning and is
// refused.
func resolveExecutable(root *rootfs, exe, pathEnv string, binds []volplan.Bind) (string, error) {
	switch {
	case path.IsAbs(exe):
		return exe, checkExecutable(root, exe, binds)
	case exe == "":
		return "", fmt.Errorf("empty executable name: %w", ErrInvalidPod)
	case strings.Contains(exe, "/"):
		return "", fmt.Errorf("executable %q is neither an absolute path nor a bare name: %w", exe, ErrInvalidPod)
	}
	if root.dir == "" {
		return "", fmt.Errorf("executable %q is not an absolute path, and the app's rootfs is not known to search its PATH: %w", exe, ErrInvalidPod)
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		// An empty or relative PATH entry means "relative to the
		// working directory": never meant for a service, skip it.
		if !path.IsAbs(dir) {
			continue
		}
		cand := path.Join(dir, exe)
		st, err := root.stat(cand)
		if err != nil {
			continue
		}
		if isRegular(st) && isExecutable(st) {
			return cand, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in the app's PATH %q: %w", exe, pathEnv, ErrInvalidPod)
}

// checkExecutable makes sure an absolute executable is an executable file
// in the app's rootfs, so that a wrong --exec is reported with its path and
// the reason before the VM boots, instead of as systemd's bare status 203
// inside the guest. A path on one of the app's volumes is left to the
// guest: what a volume holds is only known there. So is every path when
// the rootfs is not known (unit tests).
func checkExecutable(root *rootfs, exe string, binds []volplan.Bind) error {
	if root.dir == "" {
		return nil
	}
	for _, b := range binds {
		if exe == b.Target || strings.HasPrefix(exe, strings.TrimSuffix(b.Target, "/")+"/") {
			return nil
		}
	}
	st, err := root.stat(exe)
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("executable %q: no such file in the app's rootfs: %w", exe, ErrInvalidPod)
	case err != nil:
		return fmt.Errorf("executable %q: %v: %w", exe, err, ErrInvalidPod)
	case !isRegular(st):
		return fmt.Errorf("executable %q: not a regular file in the app's rootfs: %w", exe, ErrInvalidPod)
	case !isExecutable(st):
		return fmt.Errorf("executable %q: not executable (mode %04o): %w", exe, st.Mode&0o7777, ErrInvalidPod)
	}
	return nil
}

func isRegular(st unix.Stat_t) bool    { return st.Mode&unix.S_IFMT == unix.S_IFREG }
func isExecutable(st unix.Stat_t) bool { return st.Mode&0o111 != 0 }
