// Package guest holds what our programs do inside the VM, before and beside
// systemd. It runs only in the guest; nothing here touches the host.
package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"golang.org/x/sys/unix"
)

// InitStartFile records when the kernel handed over to userspace.
const InitStartFile = "/run/stage1/init-start-ms"

// mountShare mounts the host share tag on target, over virtiofs when the
// host says so (contract.VirtiofsParam), else over 9p.
func mountShare(tag, target string, flags uintptr) error {
	if virtiofsShare(tag) {
		return unix.Mount(tag, target, "virtiofs", flags, "")
	}
	return unix.Mount(tag, target, "9p", flags, contract.NinePMountOptions)
}

// virtiofsShare says whether the share tag is served by virtiofs (the
// kernel command line lists those), not 9p.
func virtiofsShare(tag string) bool {
	return slices.Contains(strings.Split(kernelParam(contract.VirtiofsParam), ","), tag)
}

// kernelParam is the value of key=value on the kernel's command line ("" if
// absent). The kernel hands such keys to PID 1 as environment variables,
// but systemd's services do not inherit PID 1's environment.
func kernelParam(key string) string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return os.Getenv(key)
	}
	return paramIn(string(b), key)
}

// paramIn is the value of key=value in a kernel command line.
func paramIn(cmdline, key string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

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
	// systemd expects /var/run to point at /run.
	if err := os.Symlink("../run", "/var/run"); err != nil {
		return fmt.Errorf("link /var/run: %w", err)
	}
	if err := LinkPorts("/sys/class/virtio-ports", contract.PortDir); err != nil {
		return err
	}
	if err := recordInitStart(); err != nil {
		return err
	}
	if err := tuneMemory(); err != nil {
		return err
	}
	// A host making a template drops what QEMU translated so far: the
	// kernel's boot and ours run in no clone.
	if err := Send(contract.EventsPort, string(contract.EventKernelBooted)); err != nil {
		fmt.Fprintf(os.Stderr, "stage1-guest: %v\n", err)
	}
	// systemd boots to the template point (contract.BootTarget), where
	// Configure makes the guest a pod's.
	argv := append([]string{contract.Systemd}, os.Args[1:]...)
	return fmt.Errorf("exec %s: %w", contract.Systemd, syscall.Exec(contract.Systemd, argv, os.Environ()))
}

// mountPod mounts the pod share and binds the journal where journald
// writes.
func mountPod() error {
	if err := mountShare(contract.PodTag, contract.PodMount, unix.MS_NOSUID|unix.MS_NODEV); err != nil {
		return fmt.Errorf("mount the pod share: %w", err)
	}
	journal := filepath.Join(contract.PodMount, contract.ShareJournal)
	if err := os.MkdirAll(contract.JournalMount, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(journal, contract.JournalMount, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the pod's journal: %w", err)
	}
	// /var is ready before journald starts: tell it to write the
	// persistent journal at once instead of waiting for a flush.
	if err := os.MkdirAll(journaldRunDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(journaldRunDir, "flushed"), nil, 0o644)
}

// installUnits writes the pod's units (from its configuration) in
// systemd's runtime unit directory. systemd loads them when the configure
// service's OnSuccess= asks for the pod's target: it loaded that name as
// not found at boot, and tries again because the directory changed since
// (no daemon-reload).
func installUnits(units []contract.PodFile) error {
	if err := os.MkdirAll(contract.RuntimeUnitDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", contract.RuntimeUnitDir, err)
	}
	for _, u := range units {
		if err := os.WriteFile(filepath.Join(contract.RuntimeUnitDir, u.Name), []byte(u.Data), 0o644); err != nil {
			return fmt.Errorf("install unit %s: %w", u.Name, err)
		}
	}
	// systemd rescans its unit directories when their times change. A
	// directory's time has the kernel's coarse tick: if systemd scanned
	// it while the files above were being written, within one tick, it
	// would not see the rest. A time no scan can have seen forces one.
	t := time.Now().Add(time.Second)
	return os.Chtimes(contract.RuntimeUnitDir, t, t)
}

// installAccounts puts the pod's passwd and group (from its
// configuration) over the image's, which is read-only: written to /run
// and bound over them.
func installAccounts(files []contract.PodFile) error {
	for _, f := range files {
		tmp := filepath.Join("/run/stage1", f.Name)
		if err := os.WriteFile(tmp, []byte(f.Data), 0o644); err != nil {
			return err
		}
		if err := unix.Mount(tmp, "/etc/"+f.Name, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", f.Name, err)
		}
	}
	return nil
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

// Send writes one line to the named virtio-serial port. A port is open by
// one process at a time, so Send waits (a bounded time) while another
// program of ours holds it.
func Send(port, line string) error {
	var f *os.File
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		f, err = openPort(port, os.O_WRONLY)
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("write to port %s: %w", port, err)
	}
	return nil
}
