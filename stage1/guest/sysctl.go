package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// WriteSysctls sets kernel parameters given as key=value (dotted keys, as
// sysctl(8) and appc's os/unix/sysctl name them) through /proc/sys. The
// host has already checked the keys; a key with an empty component or
// anything that would leave /proc/sys is refused again here.
func WriteSysctls(assignments []string) error {
	for _, kv := range assignments {
		key, value, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return fmt.Errorf("sysctl: %q is not key=value", kv)
		}
		parts := strings.Split(key, ".")
		for _, p := range parts {
			if p == "" || p == ".." || strings.Contains(p, "/") {
				return fmt.Errorf("sysctl: bad key %q", key)
			}
		}
		p := filepath.Join(append([]string{"/proc/sys"}, parts...)...)
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
		f := os.NewFile(uintptr(fd), p)
		_, werr := f.WriteString(value)
		cerr := f.Close()
		if werr != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, werr)
		}
		if cerr != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, cerr)
		}
	}
	return nil
}
