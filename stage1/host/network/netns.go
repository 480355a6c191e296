package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/mountpoint"
)

// NetNSDir is where named network namespaces live (as with `ip netns`).
var NetNSDir = "/var/run/netns"

// NetNSName is the name of a pod's network namespace.
func NetNSName(uuid string) string { return "stage1-" + uuid }

// NetNSPath is the path of a pod's network namespace.
func NetNSPath(uuid string) string { return filepath.Join(NetNSDir, NetNSName(uuid)) }

// ensureNetNSDir makes NetNSDir a shared mount point, as `ip netns` does,
// so that namespaces mounted there are seen from every mount namespace.
func ensureNetNSDir() error {
	if err := os.MkdirAll(NetNSDir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s shared: %w", NetNSDir, err)
	}
	// Not a mount point yet.
	if err := unix.Mount(NetNSDir, NetNSDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", NetNSDir, err)
	}
	if err := unix.Mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", NetNSDir, err)
	}
	return nil
}

// createNetNS creates a network namespace and pins it at path with a bind
// mount. The namespace is made by a thread that never runs anything else
// (it ends with its goroutine), so no other goroutine ever runs in it.
func createNetNS(path string) error {
	if err := ensureNetNSDir(); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the runtime ends this thread with the
		// goroutine instead of reusing it in the new namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// destroyNetNS unpins the namespace at path and removes the file. It is a
// no-op when there is none.
func destroyNetNS(path string) error {
	return mountpoint.Remove(path)
}

// inNetNS runs fn on a thread that entered the namespace at path; the
// thread is discarded afterwards.
func inNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open %s: %w", path, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("enter %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
