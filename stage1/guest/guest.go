// Package guest holds what our programs do inside the VM, before and beside
// systemd. It runs only in the guest; nothing here touches the host.
package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Paths inside the guest.
const (
	// Systemd is exec'd by PreInit as PID 1.
	Systemd = "/usr/lib/systemd/systemd"
	// PortDir holds symlinks to virtio-serial ports by name, as udev would
	// make them; the guest runs no udev.
	PortDir = "/dev/virtio-ports"
	// InitStartFile records when the kernel handed over to userspace.
	InitStartFile = "/run/stage1/init-start-ms"
	// EventsPort is the virtio-serial port our guest programs report
	// events (boot, app exits) on. The host end is a socket of the run
	// entrypoint.
	EventsPort = "org.stage1-kvm.events"
)

// ErrNoPort means the VM has no virtio-serial port of that name.
var ErrNoPort = errors.New("virtio-serial port not found")

type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// earlyMounts are done before systemd starts: systemd leaves an API file
// system alone when it finds it already mounted, and /tmp and /var must be
// writable on a read-only root without the cost of mount units (each a
// fork+exec of mount(8), slow under emulation).
var earlyMounts = []mountSpec{
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID | unix.MS_STRICTATIME, "mode=755"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_STRICTATIME, "mode=755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/var", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=755"},
}

// PreInit prepares the guest and execs systemd. It only returns on error.
func PreInit() error {
	for _, m := range earlyMounts {
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	for _, d := range []string{"/var/tmp", "/var/log", "/var/lib"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := os.Chmod("/var/tmp", 0o1777); err != nil {
		return fmt.Errorf("chmod /var/tmp: %w", err)
	}
	if err := LinkPorts("/sys/class/virtio-ports", PortDir); err != nil {
		return err
	}
	if err := recordInitStart(); err != nil {
		return err
	}
	argv := append([]string{Systemd}, os.Args[1:]...)
	return fmt.Errorf("exec %s: %w", Systemd, syscall.Exec(Systemd, argv, os.Environ()))
}

// LinkPorts creates dst/<name> -> /dev/<vportNpM> for every named
// virtio-serial port listed in sysDir.
func LinkPorts(sysDir, dst string) error {
	entries, err := os.ReadDir(sysDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("list virtio ports: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(sysDir, e.Name(), "name"))
		if err != nil {
			continue // unnamed port
		}
		name := strings.TrimSpace(string(b))
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		link := filepath.Join(dst, name)
		if err := os.Symlink("/dev/"+e.Name(), link); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("link port %s: %w", name, err)
		}
	}
	return nil
}

// Send writes one line to the named virtio-serial port.
func Send(port, line string) error {
	f, err := os.OpenFile(filepath.Join(PortDir, port), os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNoPort, port)
	} else if err != nil {
		return fmt.Errorf("open port %s: %w", port, err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("write to port %s: %w", port, err)
	}
	return nil
}
