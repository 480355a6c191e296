package jail

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/memcg"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/jailplan"
)

// Exec is the jailer's work, in the namespaces Start made: build the jail
// the plan (JSON) describes, drop privileges and execute argv. It returns
// only on failure, after telling Start on the status pipe.
func Exec(plan string, argv []string) error {
	// Capabilities, no_new_privs and the parent-death signal belong to
	// one thread, the one that executes the program.
	runtime.LockOSThread()
	var p jailplan.Plan
	if err := json.Unmarshal([]byte(plan), &p); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	status := os.NewFile(uintptr(3+p.Files), "status")
	err := confine(p, argv, int(status.Fd()))
	status.WriteString(err.Error())
	return err
}

// confine does it all, in this order: the cgroup, the jail (needs
// CAP_SYS_ADMIN), the bounding set (CAP_SETPCAP), the user, no_new_privs,
// then exec. It returns only on failure.
func confine(p jailplan.Plan, argv []string, status int) error {
	if len(argv) == 0 {
		return errors.New("no program")
	}
	syscall.CloseOnExec(status)
	if p.Cgroup != "" {
		// Before anything is allocated; "0" is this process (a PID
		// would be this namespace's).
		if err := os.WriteFile(memcg.Group{Dir: p.Cgroup}.Procs(), []byte("0"), 0); err != nil {
			return fmt.Errorf("join cgroup %s: %w", p.Cgroup, err)
		}
	}
	if p.Root != "" {
		if err := buildJail(p); err != nil {
			return err
		}
	}
	if err := dropBounding(p.Caps); err != nil {
		return err
	}
	if p.User {
		if err := becomeUser(p.UID, p.GID, p.Caps); err != nil {
			return err
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	// A change of user clears the parent-death signal: set it again,
	// then check that the parent did not die before (run's end of the
	// status pipe is then closed).
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	fds := []unix.PollFd{{Fd: int32(status), Events: unix.POLLOUT}}
	if _, err := unix.Poll(fds, 0); err != nil || fds[0].Revents&unix.POLLERR != 0 {
		return errors.New("the run entry point is gone")
	}
	err := syscall.Exec(argv[0], argv, p.Env)
	return fmt.Errorf("exec %s: %w", argv[0], err)
}

// dropBounding removes every capability but keep from the bounding set:
// neither this process nor anything it executes can have them again.
func dropBounding(keep []jailplan.Cap) error {
	for c := 0; ; c++ {
		// Past the kernel's last capability, PR_CAPBSET_READ fails.
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err != nil {
			if c == 0 {
				return fmt.Errorf("read the bounding set: %w", err)
			}
			return nil
		}
		if has(keep, jailplan.Cap(c)) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop %v from the bounding set: %w", jailplan.Cap(c), err)
		}
	}
}

func has(caps []jailplan.Cap, c jailplan.Cap) bool {
	for _, k := range caps {
		if k == c {
			return true
		}
	}
	return false
}

// becomeUser switches to uid and gid without supplementary groups, keeping
// caps as permitted, effective, inheritable and ambient capabilities: the
// ambient ones survive the exec of a program without file capabilities.
func becomeUser(uid, gid int, caps []jailplan.Cap) error {
	// Go applies these three to every thread of the process.
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("setresgid %d: %w", gid, err)
	}
	// Keep the permitted set over the change from root (this thread's).
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keepcaps: %w", err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("setresuid %d: %w", uid, err)
	}
	var data [2]unix.CapUserData
	for _, c := range caps {
		data[c/32].Permitted |= 1 << (c % 32)
	}
	for i := range data {
		data[i].Effective, data[i].Inheritable = data[i].Permitted, data[i].Permitted
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	for _, c := range caps {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raise ambient %v: %w", c, err)
		}
	}
	return nil
}

// buildJail makes p.Root the root of this mount namespace: a small tmpfs
// holding the plan's mounts (and /proc), read-only once built.
func buildJail(p jailplan.Plan) error {
	// Nothing mounted from here on reaches the host's mount table.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if fi, err := os.Lstat(p.Root); err != nil || !fi.IsDir() {
		return fmt.Errorf("jail root %s is not a directory (%v)", p.Root, err)
	}
	const tmpfsFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount("jail", p.Root, "tmpfs", tmpfsFlags, "mode=0755,size=64k,nr_inodes=256"); err != nil {
		return fmt.Errorf("mount the jail's tmpfs: %w", err)
	}
	for _, m := range p.Mounts {
		if err := bind(p.Root, m); err != nil {
			return fmt.Errorf("jail %s: %w", m.Target, err)
		}
	}
	if p.Proc {
		dir := filepath.Join(p.Root, "proc")
		if err := os.Mkdir(dir, 0o555); err != nil {
			return err
		}
		// Processes only (no /proc/sys and the like), and only those
		// QEMU's user may ptrace: in its PID namespace, itself.
		if err := unix.Mount("proc", dir, "proc", tmpfsFlags, "hidepid=invisible,subset=pid"); err != nil {
			return fmt.Errorf("mount /proc: %w", err)
		}
	}
	if err := unix.Mount("", p.Root, "", unix.MS_REMOUNT|unix.MS_RDONLY|tmpfsFlags, ""); err != nil {
		return fmt.Errorf("make the jail read-only: %w", err)
	}
	return pivot(p.Root)
}

// pivot makes dir the root and lets go of the old one.
func pivot(dir string) error {
	if err := unix.Chdir(dir); err != nil {
		return err
	}
	// The old root ends up on top of the new one, then goes.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	return unix.Chdir("/")
}

// bind mounts m.Source at m.Target under root, never following a symlink
// at m.Source, with the plan's attributes (nosuid always; noexec, nodev and
// read-only as asked), on every mount below it too when recursive.
func bind(root string, m jailplan.Mount) error {
	fi, err := source(m)
	if err != nil || fi == nil {
		return err
	}
	target := filepath.Join(root, m.Target)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		link, err := os.Readlink(m.Source)
		if err != nil {
			return err
		}
		return os.Symlink(link, target)
	}
	if fi.IsDir() {
		err = os.Mkdir(target, 0o755)
	} else {
		err = writeEmpty(target, 0o644)
	}
	if err != nil {
		return err
	}
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_SYMLINK_NOFOLLOW)
	setFlags := uint(unix.AT_EMPTY_PATH)
	if m.Recursive {
		flags |= unix.AT_RECURSIVE
		setFlags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, m.Source, flags)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", m.Source, err)
	}
	defer unix.Close(fd)
	attr := uint64(unix.MOUNT_ATTR_NOSUID)
	if !m.Exec {
		attr |= unix.MOUNT_ATTR_NOEXEC
	}
	if !m.Device {
		attr |= unix.MOUNT_ATTR_NODEV
	}
	if m.ReadOnly {
		attr |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", setFlags, &unix.MountAttr{Attr_set: attr}); err != nil {
		return fmt.Errorf("mount_setattr %s: %w", m.Source, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s: %w", m.Source, err)
	}
	return nil
}

// source checks m.Source (making it first if asked): nil for an optional
// source that is missing, an error for a symlink unless the plan takes it
// as one.
func source(m jailplan.Mount) (os.FileInfo, error) {
	if m.Create {
		f, err := os.OpenFile(m.Source, os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o640)
		if err != nil {
			return nil, err
		}
		f.Close()
	}
	fi, err := os.Lstat(m.Source)
	if m.Optional && errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeSymlink != 0 && !m.Symlink {
		return nil, fmt.Errorf("%s is a symlink", m.Source)
	}
	return fi, nil
}

func writeEmpty(path string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	return f.Close()
}
