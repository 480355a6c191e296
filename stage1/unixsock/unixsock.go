// Package unixsock listens on and connects to Unix sockets by paths of
// any length. A socket address holds at most MaxPath bytes of path, and
// rkt puts a pod wherever its --dir says: a pod's sockets can be longer.
// A longer path is reached through its directory, opened with O_PATH, as
// /proc/self/fd/N/NAME, which the kernel resolves like the path itself.
package unixsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// MaxPath is the longest path a socket address holds: sockaddr_un's
// sun_path, less its terminating zero.
const MaxPath = 107

// Reach calls f with a name by which this process reaches path in socket
// calls: path itself if it fits a socket address, else
// /proc/self/fd/N/<base>, N its directory, held open until f returns.
func Reach(path string, f func(name string) error) error {
	if len(path) <= MaxPath {
		return f(path)
	}
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	defer dir.Close()
	name := "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + filepath.Base(path)
	if len(name) > MaxPath {
		return fmt.Errorf("socket %s: its name is longer than a socket address holds (%d bytes)", path, MaxPath)
	}
	return f(name)
}

// Listen listens on path, whatever its length. The listener removes its
// socket when closed only if path fits a socket address (the name it
// was bound by is gone with its directory's descriptor): whoever closes
// it removes a longer path itself (os.Remove takes any length).
func Listen(path string) (*net.UnixListener, error) {
	var ln *net.UnixListener
	err := Reach(path, func(name string) error {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
		if err != nil {
			return err
		}
		l.SetUnlinkOnClose(name == path)
		ln = l
		return nil
	})
	return ln, err
}

// Dial connects to the socket at path, whatever its length.
func Dial(path string) (net.Conn, error) {
	var c net.Conn
	err := Reach(path, func(name string) error {
		var err error
		c, err = net.Dial("unix", name)
		return err
	})
	return c, err
}
