// Package jailplan decides how the pod's VMM is confined (docs/security.md):
// what QEMU's jail holds and where, the paths QEMU is given, its user and
// capabilities; and what virtiofsd keeps. The guest is hostile, and a guest
// that takes over QEMU through a device bug must find nothing of the host
// it does not need. It is pure: stage1/host/jail carries a Plan out.
package jailplan

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// ErrBadPlan wraps every problem with the input of a plan.
var ErrBadPlan = errors.New("cannot plan the jail")

// Cap is a Linux capability, by number (linux/capability.h).
type Cap uint

// The capabilities a plan may keep.
const (
	CapChown       Cap = 0
	CapDacOverride Cap = 1
	CapFowner      Cap = 3
	CapFsetid      Cap = 4
	CapSetgid      Cap = 6
	CapSetuid      Cap = 7
	CapSetpcap     Cap = 8
	CapSysAdmin    Cap = 21
	CapSysResource Cap = 24
)

var capNames = map[Cap]string{
	CapChown: "CAP_CHOWN", CapDacOverride: "CAP_DAC_OVERRIDE", CapFowner: "CAP_FOWNER",
	CapFsetid: "CAP_FSETID", CapSetgid: "CAP_SETGID", CapSetuid: "CAP_SETUID", CapSetpcap: "CAP_SETPCAP",
	CapSysAdmin: "CAP_SYS_ADMIN", CapSysResource: "CAP_SYS_RESOURCE",
}

func (c Cap) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return "cap" + strconv.Itoa(int(c))
}

// Mask is the capability set caps as /proc/<pid>/status shows it (CapEff
// and its siblings: 16 hex digits).
func Mask(caps []Cap) string {
	var m uint64
	for _, c := range caps {
		m |= 1 << c
	}
	return fmt.Sprintf("%016x", m)
}

// QEMUCaps are all the capabilities QEMU keeps: what its 9p server needs
// to act on the shares for the guest's root with security_model=passthrough
// (hw/9pfs/9p-local.c), as QEMU's own unprivileged user. Each is the bounding,
// permitted, effective, inheritable and ambient set's only members.
var QEMUCaps = []Cap{
	// A file the guest creates is made by QEMU's user, then given the
	// owner the guest asked for (fchownat); chown and chgrp as well.
	CapChown,
	// The guest's root reads and writes every file of a share, whatever
	// its owner and mode; QEMU also reaches its own sockets and console
	// log (root's) through it.
	CapDacOverride,
	// chmod, utimes and user xattrs on files QEMU's user does not own
	// (all of them, once chowned), O_NOATIME opens, deleting in sticky
	// directories.
	CapFowner,
	// Set-group-ID bits the guest sets stay set although QEMU's user is
	// not in the file's group; writes keep set-user-ID bits as the guest
	// kernel decides.
	CapFsetid,
}

// QEMU runs as this user and group, which own nothing on the host. A
// fixed number far above the ranges of users, of systemd's dynamic users
// and of the ranges container managers map user namespaces to.
const (
	QEMUUID = 0x7fff0000
	QEMUGID = 0x7fff0000
)

// VirtioFSDCaps bound virtiofsd (it stays root: it takes each request's
// user and group): the file-system capabilities it keeps for itself once
// set up (tools/virtiofsd's setup_capabilities, less CAP_MKNOD and
// CAP_SETFCAP, which qemu.VirtioFSDArgv removes from its list too), and
// what setting up its own sandbox needs: CAP_SYS_ADMIN for its namespaces,
// mounts and pivot_root, CAP_SYS_RESOURCE to raise its descriptor limit,
// CAP_SETPCAP to cut its own bounding set (without it virtiofsd dies at
// setup: measured). It drops these three itself before it serves the guest.
var VirtioFSDCaps = []Cap{
	CapChown, CapDacOverride, CapFowner, CapFsetid, CapSetgid, CapSetuid,
	CapSysAdmin, CapSysResource, CapSetpcap,
}

// Mount is one bind mount into the jail.
type Mount struct {
	// Source is the host path, Target the path in the jail (absolute).
	Source string `json:"source"`
	Target string `json:"target"`
	// ReadOnly, and Recursive: what is mounted below Source comes along
	// (a share shows its submounts, as before the jail).
	ReadOnly  bool `json:"readOnly,omitempty"`
	Recursive bool `json:"recursive,omitempty"`
	// Exec keeps the mount executable (programs); Device keeps its
	// device nodes usable. Every other mount is noexec and nodev, and
	// every mount nosuid.
	Exec   bool `json:"exec,omitempty"`
	Device bool `json:"device,omitempty"`
	// Create makes Source as an empty file if it is missing (a log QEMU
	// writes); Optional skips a missing Source; Symlink makes a Source
	// that is a symlink the same symlink in the jail (a host's /lib on a
	// merged /usr) instead of refusing it.
	Create   bool `json:"create,omitempty"`
	Optional bool `json:"optional,omitempty"`
	Symlink  bool `json:"symlink,omitempty"`
}

// Plan is how the jailer confines one program before executing it.
type Plan struct {
	// Root, if set, is an empty host directory: in new mount, PID,
	// network, IPC and UTS namespaces, the jailer mounts a small tmpfs
	// there, binds Mounts into it, makes it read-only and the root.
	// Without Root the program keeps the host's namespaces and root
	// (virtiofsd, which sandboxes itself).
	Root   string  `json:"root,omitempty"`
	Mounts []Mount `json:"mounts,omitempty"`
	// Proc mounts a procfs of the jail's PID namespace at /proc, showing
	// only processes (QEMU's 9p server names files as /proc/self/fd/N).
	Proc bool `json:"proc,omitempty"`
	// User: the program runs as UID and GID, no supplementary groups,
	// with Caps as its ambient capabilities. Otherwise it stays root.
	User bool `json:"user,omitempty"`
	UID  int  `json:"uid,omitempty"`
	GID  int  `json:"gid,omitempty"`
	// Caps is the bounding set: every other capability is gone for good
	// (no_new_privs is always set too).
	Caps []Cap `json:"caps"`
	// Files is how many descriptors after stderr (3, 4, ...) the program
	// inherits; the one after them is the jailer's status pipe.
	Files int `json:"files"`
	// Env is the program's whole environment.
	Env []string `json:"env,omitempty"`
	// Cgroup, if set, is a cgroup's directory the jailer joins first,
	// so that all the program allocates is counted there.
	Cgroup string `json:"cgroup,omitempty"`
}

// Paths in QEMU's jail.
const (
	JailQEMUDir  = "/qemu"
	JailDataDir  = "/qemu/share"
	JailKernel   = "/boot/kernel"
	JailImage    = "/boot/image"
	JailVMDir    = "/vm"
	JailConsole  = "/vm/console.log"
	JailSharesIn = "/shares"
	JailRAM      = "/vm/ram"
)

// The device nodes QEMU gets: /dev/urandom for virtio-rng, /dev/null for
// QEMU's own use, /dev/kvm under KVM only.
const (
	devNull    = "/dev/null"
	devUrandom = "/dev/urandom"
	devKVM     = "/dev/kvm"
)

// stdioFD is the prefix of a path naming one of QEMU's own descriptors
// (the console on stderr with --debug): it works in the jail as it is.
const stdioFD = "/proc/self/fd/"

// ForQEMU plans QEMU's jail on root (an empty directory) for the VM c
// describes. It returns the plan and c as QEMU in the jail must see it:
// every host path replaced by its place in the jail, QMP on an inherited
// socket. The caller starts qemu.Argv of that config through the jailer.
func ForQEMU(c qemu.Config, root string) (Plan, qemu.Config, error) {
	if err := checkInput(c, root); err != nil {
		return Plan{}, c, err
	}
	j := c
	p := Plan{
		Root: root, Proc: true,
		User: true, UID: QEMUUID, GID: QEMUGID,
		Caps:   slices.Clone(QEMUCaps),
		Env:    c.Binary.Env(),
		Cgroup: c.Cgroup,
	}
	p.Mounts, j.Binary = binaryMounts(c.Binary)
	p.Mounts = append(p.Mounts,
		Mount{Source: c.Kernel, Target: JailKernel, ReadOnly: true},
		Mount{Source: c.Image, Target: JailImage, ReadOnly: true},
		Mount{Source: devNull, Target: devNull, Device: true},
		Mount{Source: devUrandom, Target: devUrandom, ReadOnly: true, Device: true},
	)
	j.Kernel, j.Image = JailKernel, JailImage
	if c.Accel == qemu.KVM {
		p.Mounts = append(p.Mounts, Mount{Source: devKVM, Target: devKVM, Device: true})
	}
	if c.Console != "" && !strings.HasPrefix(c.Console, stdioFD) {
		p.Mounts = append(p.Mounts, Mount{Source: c.Console, Target: JailConsole, Create: true})
		j.Console = JailConsole
	}
	if c.RAMFile != "" {
		// A clone's QEMU cannot change its template: read-only.
		p.Mounts = append(p.Mounts, Mount{Source: c.RAMFile, Target: JailRAM, ReadOnly: !c.RAMShared})
		j.RAMFile = JailRAM
	}
	j.Ports = nil
	for i, port := range c.Ports {
		m := Mount{Source: port.Socket, Target: path.Join(JailVMDir, "port"+strconv.Itoa(i))}
		p.Mounts = append(p.Mounts, m)
		j.Ports = append(j.Ports, qemu.Port{Name: port.Name, Socket: m.Target})
	}
	var shareMounts []Mount
	shareMounts, j.Shares = shares(c.Shares)
	p.Mounts = append(p.Mounts, shareMounts...)
	p.Files = len(c.Taps)
	if c.QMPSocket != "" {
		j.QMPSocket, j.QMPFD = "", qemu.TapFD(len(c.Taps))
		p.Files++
	}
	return p, j, nil
}

// checkInput: the jail's root and every host path are absolute, and no
// target is taken twice (by construction; checked all the same).
func checkInput(c qemu.Config, root string) error {
	var probs []string
	if root == "" || !filepath.IsAbs(root) {
		probs = append(probs, fmt.Sprintf("jail root %q is not an absolute path", root))
	}
	paths := []string{c.Binary.Path, c.Kernel, c.Image}
	if c.Binary.DataDir != "" {
		paths = append(paths, c.Binary.DataDir)
	}
	if c.Console != "" {
		paths = append(paths, c.Console)
	}
	if c.RAMFile != "" {
		paths = append(paths, c.RAMFile)
	}
	for _, port := range c.Ports {
		paths = append(paths, port.Socket)
	}
	for _, s := range c.Shares {
		if s.Transport == qemu.Virtiofs {
			paths = append(paths, s.Socket)
		} else {
			paths = append(paths, s.Path)
		}
	}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			probs = append(probs, fmt.Sprintf("%q is not an absolute path", p))
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrBadPlan, strings.Join(probs, "; "))
	}
	return nil
}

// binaryMounts: the bundled QEMU (static) and its firmware under
// JailQEMUDir. A host QEMU loads the host's libraries, modules and
// firmware: it gets /usr and the top-level library directories read-only,
// and its own binary and firmware at the same paths.
func binaryMounts(b qemu.Binary) ([]Mount, qemu.Binary) {
	j := qemu.Binary{Path: path.Join(JailQEMUDir, "bin", path.Base(b.Path)), Bundled: b.Bundled}
	if b.Bundled {
		ms := []Mount{{Source: b.Path, Target: j.Path, ReadOnly: true, Exec: true}}
		if b.DataDir != "" {
			ms = append(ms, Mount{Source: b.DataDir, Target: JailDataDir, ReadOnly: true})
			j.DataDir = JailDataDir
		}
		return ms, j
	}
	ms := []Mount{{Source: "/usr", Target: "/usr", ReadOnly: true, Recursive: true, Exec: true}}
	for _, d := range []string{"/lib", "/lib64", "/lib32", "/libx32"} {
		ms = append(ms, Mount{Source: d, Target: d, ReadOnly: true, Exec: true, Optional: true, Symlink: true})
	}
	ms = append(ms, Mount{Source: "/etc/ld.so.cache", Target: "/etc/ld.so.cache", ReadOnly: true, Optional: true})
	j.Path = b.Path
	if !under(b.Path, "/usr") {
		ms = append(ms, Mount{Source: b.Path, Target: b.Path, ReadOnly: true, Exec: true})
	}
	if b.DataDir != "" {
		j.DataDir = b.DataDir
		if !under(b.DataDir, "/usr") {
			ms = append(ms, Mount{Source: b.DataDir, Target: b.DataDir, ReadOnly: true})
		}
	}
	return ms, j
}

func under(p, dir string) bool { return strings.HasPrefix(path.Clean(p), dir+"/") }

// shares: a 9p share's directory at JailSharesIn/<i> (recursive: the
// guest sees what is mounted below it, as without the jail; read-only
// when the share is), a virtiofs share's socket at /vm/fs<i> (virtiofsd,
// outside the jail, serves the directory).
func shares(in []qemu.Share) ([]Mount, []qemu.Share) {
	var ms []Mount
	var out []qemu.Share
	for i, s := range in {
		j := s
		if s.Transport == qemu.Virtiofs {
			// QEMU only connects to virtiofsd: Path is not on its
			// command line.
			j.Socket = path.Join(JailVMDir, "fs"+strconv.Itoa(i))
			ms = append(ms, Mount{Source: s.Socket, Target: j.Socket})
		} else {
			j.Path = path.Join(JailSharesIn, strconv.Itoa(i))
			ms = append(ms, Mount{Source: s.Path, Target: j.Path, ReadOnly: s.ReadOnly, Recursive: true})
		}
		out = append(out, j)
	}
	return ms, out
}

// ForVirtioFSD plans how virtiofsd starts: in the host's namespaces (it
// makes its own and pivots into the shared directory), as root (it takes
// each request's user and group), with VirtioFSDCaps as its bounding set
// and no_new_privs. It inherits its listening socket.
func ForVirtioFSD() Plan {
	return Plan{Caps: slices.Clone(VirtioFSDCaps), Files: 1}
}
