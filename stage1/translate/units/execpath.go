package units

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveExecutable makes an app's executable absolute. appc leaves a bare
// name to be found in the app's PATH, and rkt searched that PATH inside the
// app's rootfs; systemd would search the guest's own directories instead,
// so the search happens here. The first regular file with an execute bit
// wins. A relative path with a slash ("bin/app") has no agreed meaning and
// is refused.
func resolveExecutable(root *rootfs, exe, pathEnv string) (string, error) {
	switch {
	case path.IsAbs(exe):
		return exe, nil
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
		if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
			return cand, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in the app's PATH %q: %w", exe, pathEnv, ErrInvalidPod)
}
