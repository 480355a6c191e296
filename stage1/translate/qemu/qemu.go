// Package qemu describes the pod's VM (Config: QEMU's microvm machine with
// virtio-mmio devices and direct kernel boot) and translates it into QEMU's
// command line (Argv), the guest kernel's (KernelCmdline) and virtiofsd's
// (VirtioFSDArgv). It is pure: stage1/host/hypervisor starts the processes.
package qemu

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// ErrInvalidConfig wraps every Config.Validate failure.
var ErrInvalidConfig = errors.New("invalid VM config")

// Binary says how to execute QEMU.
type Binary struct {
	// Path is the qemu-system-x86_64 executable.
	Path string
	// Path is run directly: the bundled QEMU is static (qemu/build.sh).
	// Loader, if set, is the dynamic loader virtiofsd runs through, with
	// LibDir as its only library path: this is how the stage1 image runs
	// Debian's virtiofsd and its libraries on a host that has neither.
	Loader string
	LibDir string
	// DataDir holds QEMU's firmware (qboot.rom, microvm's default BIOS); empty means
	// QEMU's built-in default.
	DataDir string
	// VirtioFSD is the virtiofsd executable serving virtiofs shares;
	// empty means virtiofs is not available.
	VirtioFSD string
	// Jailer is the program that confines QEMU and virtiofsd before
	// executing them (stage1/host/jail, docs/security.md).
	Jailer string
	// Bundled: this is the stage1's own QEMU (qemu/build.sh), static (it
	// needs no file of the host's) and built with seccomp, so Argv turns
	// its sandbox on. A host QEMU is assumed to be neither.
	Bundled bool
}

// mallocEnv fixes glibc's thresholds for QEMU: by default they grow with
// the largest block freed, after which QEMU's big boot-time allocations
// (TCG's softmmu TLBs, resized as the guest's working set changes) come
// from the heap and stay there once freed. Fixed, they are mapped on their
// own and go back to the host when freed: -2 MiB on an idle pod. One arena:
// the vCPU thread's allocations otherwise fill an arena of their own beside
// the main one, each with its own free space (-1.4 MiB). GLib's slice
// allocator (2.74) keeps what is freed in its own caches, for one the
// nodes of TCG's tree of translated blocks, tens of thousands after boot:
// with plain malloc they go back once the translation cache is emptied
// (-1 MiB).
var mallocEnv = []string{"MALLOC_MMAP_THRESHOLD_=131072", "MALLOC_TRIM_THRESHOLD_=131072", "MALLOC_ARENA_MAX=1", "G_SLICE=always-malloc"}

// Env is the environment QEMU needs on top of the caller's.
func (b Binary) Env() []string {
	return slices.Clone(mallocEnv)
}

// Bundled is the QEMU layout inside the stage1 rootfs at root.
func Bundled(root string) Binary {
	q := filepath.Join(root, contract.QEMUDir)
	return Binary{
		Path:      filepath.Join(q, "bin", "qemu-system-x86_64"),
		Loader:    filepath.Join(q, "lib", "ld-linux-x86-64.so.2"),
		LibDir:    filepath.Join(q, "lib"),
		DataDir:   filepath.Join(q, "share"),
		VirtioFSD: filepath.Join(q, "bin", "virtiofsd"),
		Jailer:    filepath.Join(root, contract.Jailer),
		Bundled:   true,
	}
}

// Port is a virtio-serial port whose host end is a UNIX socket that QEMU
// connects to (the host side listens before QEMU starts).
type Port struct {
	Name   string
	Socket string
}

// Transport is how a Share reaches the guest.
type Transport string

const (
	// NineP is QEMU's own 9p server (virtio-9p): the default.
	NineP Transport = "9p"
	// Virtiofs is FUSE over virtio, served by a virtiofsd process per
	// share (see StartVirtioFSD).
	Virtiofs Transport = "virtiofs"
)

// Share is a host directory exported to the guest.
type Share struct {
	Tag      string
	Path     string
	ReadOnly bool
	// Transport is NineP when empty. A Virtiofs share is served by a
	// virtiofsd listening on Socket; virtiofsd cannot export read-only,
	// so a read-only share must use 9p, where QEMU enforces it.
	Transport Transport
	Socket    string
}

// UsesVirtiofs reports whether any share is served over virtiofs.
func (c Config) UsesVirtiofs() bool {
	for _, s := range c.Shares {
		if s.Transport == Virtiofs {
			return true
		}
	}
	return false
}

// Config describes one VM.
type Config struct {
	Binary Binary
	Accel  Accel
	// Kernel is a bzImage, or an uncompressed vmlinux with a PVH entry
	// point.
	Kernel  string
	Cmdline []string
	// Image is the guest OS image, attached read-only as /dev/vda.
	Image     string
	MemoryMiB int
	CPUs      int
	// TBSizeMiB bounds TCG's translation cache (QEMU's default is far
	// larger and dominates an idle guest's host memory); 0 keeps QEMU's.
	TBSizeMiB int
	// Console receives the guest's serial console; empty discards it.
	// ConsoleAppend opens it for appending (for a shared stderr).
	Console       string
	ConsoleAppend bool
	Ports         []Port
	Shares        []Share
	// Taps are the pod's network interfaces, each an open tap device
	// handed to QEMU as an inherited descriptor.
	Taps []Tap
	// QMPSocket, if set, is where QEMU listens for QMP (see
	// VM.ReleaseBootMemory).
	QMPSocket string
	// QMPFD, if set, is a listening socket QEMU inherits and serves QMP
	// on instead: how a jailed QEMU, which cannot create a file on the
	// host, serves QMPSocket.
	QMPFD int
	// Name, if set, names the VM on QEMU's command line (-name): the
	// marker by which the host tells the pod's QEMU from a recycled PID.
	Name string
	// RAMFile, if set, is a template's guest RAM (docs/architecture.md,
	// "Templates"). With RAMShared, guest RAM is the file itself (a
	// template being made); without, it is mapped from the file,
	// private and copy-on-write, the file opened read-only (a clone).
	RAMFile   string
	RAMShared bool
	// Incoming: the VM waits, paused, for its device state
	// (LoadState) and stays paused until resumed: a clone of a template.
	Incoming bool
	// Cgroup, if set, is the directory of a cgroup QEMU joins before it
	// runs: the pod's memory bound (memcg). Not on QEMU's command line.
	Cgroup string
}

// Tap is one guest network interface backed by a tap device that the host
// side already opened (in the pod's network namespace). QEMU inherits File
// as descriptor TapFD(i) for the i-th tap; the guest sees a virtio-net
// device with the given MAC.
type Tap struct {
	File *os.File
	MAC  string
}

// TapFD is the descriptor number QEMU gets the i-th tap's file as: the taps
// are QEMU's first inherited files after stdin, stdout and stderr.
func TapFD(i int) int { return 3 + i }

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var probs []string
	if c.Binary.Path == "" {
		probs = append(probs, "no QEMU binary")
	}
	if c.Binary.Loader != "" && c.Binary.LibDir == "" {
		probs = append(probs, "a loader needs a library directory")
	}
	if c.Accel != KVM && c.Accel != TCG {
		probs = append(probs, fmt.Sprintf("accelerator %q is neither kvm nor tcg", c.Accel))
	}
	if c.Kernel == "" {
		probs = append(probs, "no kernel")
	}
	if c.Image == "" {
		probs = append(probs, "no guest image")
	}
	if c.MemoryMiB < 64 {
		probs = append(probs, fmt.Sprintf("memory %d MiB is below the 64 MiB minimum", c.MemoryMiB))
	}
	if c.CPUs < 1 {
		probs = append(probs, fmt.Sprintf("%d vCPUs", c.CPUs))
	}
	if c.TBSizeMiB < 0 {
		probs = append(probs, "negative translation buffer size")
	}
	probs = append(probs, cmdlineProblems(c.Cmdline)...)
	probs = append(probs, c.portProblems()...)
	probs = append(probs, c.shareProblems()...)
	probs = append(probs, c.confineProblems()...)
	for i, t := range c.Taps {
		if t.File == nil {
			probs = append(probs, fmt.Sprintf("tap %d has no file", i))
		}
		if _, err := net.ParseMAC(t.MAC); err != nil || strings.Contains(t.MAC, ",") {
			probs = append(probs, fmt.Sprintf("tap %d: bad MAC %q", i, t.MAC))
		}
	}
	if c.Incoming && (c.RAMFile == "" || c.RAMShared) {
		probs = append(probs, "an incoming VM needs its template's RAM file, mapped privately")
	}
	if c.Incoming && c.QMPSocket == "" && c.QMPFD == 0 {
		probs = append(probs, "an incoming VM needs QMP")
	}
	if c.RAMFile != "" && c.UsesVirtiofs() {
		probs = append(probs, "virtiofs (vhost-user) cannot be saved or restored: no template RAM file")
	}
	for _, f := range []string{c.Kernel, c.Image, c.Console, c.QMPSocket, c.RAMFile} {
		if strings.Contains(f, ",") {
			probs = append(probs, fmt.Sprintf("path %q contains a comma (QEMU option syntax)", f))
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(probs, "; "))
	}
	return nil
}

// cmdlineProblems: the kernel command line is one string of arguments
// separated by white space, where double quotes group words; and the
// kernel's white space includes byte 0xa0 (Latin-1's no-break space), in
// many UTF-8 characters. So each argument must be printable ASCII without
// space or double quote: then the guest kernel reads exactly the
// arguments given, and none can add one.
func cmdlineProblems(args []string) []string {
	var probs []string
	for _, a := range args {
		ok := a != ""
		for i := 0; i < len(a) && ok; i++ {
			ok = a[i] > ' ' && a[i] < 0x7f && a[i] != '"'
		}
		if !ok {
			probs = append(probs, fmt.Sprintf("kernel argument %q is not one word of printable ASCII without quotes", a))
		}
	}
	return probs
}

// portProblems: every port needs a unique name and a socket path, both of
// which QEMU's option syntax can carry.
func (c Config) portProblems() []string {
	var probs []string
	names := map[string]bool{}
	for _, p := range c.Ports {
		if p.Name == "" || p.Socket == "" {
			probs = append(probs, "a port needs a name and a socket")
		}
		if names[p.Name] {
			probs = append(probs, fmt.Sprintf("port %q twice", p.Name))
		}
		names[p.Name] = true
		if strings.Contains(p.Socket, ",") {
			probs = append(probs, fmt.Sprintf("socket path %q contains a comma", p.Socket))
		}
		if strings.Contains(p.Name, ",") {
			probs = append(probs, fmt.Sprintf("port name %q contains a comma", p.Name))
		}
	}
	return probs
}

// shareProblems: every share needs a tag and a path without commas and a
// transport it can use.
func (c Config) shareProblems() []string {
	var probs []string
	for _, s := range c.Shares {
		if s.Tag == "" || s.Path == "" {
			probs = append(probs, "a share needs a tag and a path")
		}
		if strings.Contains(s.Path, ",") {
			probs = append(probs, fmt.Sprintf("share path %q contains a comma", s.Path))
		}
		if strings.Contains(s.Tag, ",") {
			probs = append(probs, fmt.Sprintf("share tag %q contains a comma", s.Tag))
		}
		switch s.Transport {
		case "", NineP:
		case Virtiofs:
			if s.Socket == "" || strings.Contains(s.Socket, ",") {
				probs = append(probs, fmt.Sprintf("virtiofs share %q needs a socket path without commas", s.Tag))
			}
			if s.ReadOnly {
				probs = append(probs, fmt.Sprintf("virtiofs share %q cannot be read-only", s.Tag))
			}
		default:
			probs = append(probs, fmt.Sprintf("share %q: unknown transport %q", s.Tag, s.Transport))
		}
	}
	return probs
}

// Argv is the full command line that starts the VM described by c.
func Argv(c Config) []string {
	a := []string{c.Binary.Path}
	if c.Binary.DataDir != "" {
		a = append(a, "-L", c.Binary.DataDir)
	}
	a = append(a, confineArgs(c)...)
	a = append(a, machineArgs(c)...)
	a = append(a, bootArgs(c)...)
	a = append(a, deviceArgs()...)
	a = append(a, portArgs(c)...)
	a = append(a, tapArgs(c)...)
	return append(a, shareArgs(c)...)
}

// machineArgs: the machine, its memory, CPUs and accelerator.
func machineArgs(c Config) []string {
	// microvm without ACPI, PCI or option ROMs: the guest kernel finds its
	// devices on its command line and its CPUs in MP tables.
	a := []string{
		"-M", "microvm,acpi=off,x-option-roms=off",
		"-nodefaults", "-no-user-config", "-nographic",
		// A guest reboot ends QEMU: that is how the guest powers off.
		"-no-reboot",
		"-m", strconv.Itoa(c.MemoryMiB),
		"-smp", strconv.Itoa(c.CPUs),
	}
	virtiofs := c.UsesVirtiofs()
	if c.RAMFile != "" {
		a = append(a, "-object", ramFileObject(c), "-machine", "memory-backend=ram")
	} else if virtiofs || c.Accel == TCG {
		// Guest RAM in a memfd: virtiofsd reads and writes the guest's
		// buffers itself, so it must be memory it can map. Under TCG
		// it also keeps huge pages away from guest RAM (QEMU asks for
		// them on anonymous RAM): with 4 KiB pages the host holds what
		// the guest uses, not every 2 MiB block it touched (-5 MiB on
		// an idle pod, no measurable cost in start time). Under KVM
		// huge pages speed the guest up, so they stay.
		a = append(a,
			"-object", "memory-backend-memfd,id=ram,share=on,size="+strconv.Itoa(c.MemoryMiB)+"M",
			"-machine", "memory-backend=ram",
		)
	}
	if virtiofs {
		// libvhost-user only speaks virtio 1.0, not microvm's default
		// legacy virtio-mmio.
		a = append(a, "-global", "virtio-mmio.force-legacy=false")
	}
	if c.Accel == KVM {
		return append(a, "-accel", "kvm", "-cpu", "host")
	}
	accel := "tcg"
	if c.TBSizeMiB > 0 {
		accel += ",tb-size=" + strconv.Itoa(c.TBSizeMiB)
	}
	return append(a, "-accel", accel, "-cpu", "max")
}

// ramFileObject is guest RAM backed by a template's file. Free page
// reporting then drops a clone's private copies of pages (they read as
// the template again), never the file's pages (qemu/patches/0009).
func ramFileObject(c Config) string {
	o := "memory-backend-file,id=ram,mem-path=" + c.RAMFile + ",size=" + strconv.Itoa(c.MemoryMiB) + "M"
	if c.RAMShared {
		return o + ",share=on"
	}
	return o + ",share=off,x-cow=on"
}

// bootArgs: the kernel, QMP, the serial console and the guest image.
func bootArgs(c Config) []string {
	a := []string{
		"-kernel", c.Kernel,
		"-append", strings.Join(c.Cmdline, " "),
	}
	a = append(a, qmpArgs(c)...)
	if c.Incoming {
		// The state comes over QMP (migrate-incoming fd:...): the jail
		// has no shell for exec: and QEMU opens no file for it.
		a = append(a, "-incoming", "defer")
		// Paused once loaded: run gives it its template's translated
		// code (loading the state empties the cache), then resumes it.
		a = append(a, "-S")
	}
	if c.Console == "" {
		a = append(a, "-serial", "null")
	} else {
		opts := "file,id=console,path=" + c.Console
		if c.ConsoleAppend {
			opts += ",append=on"
		}
		a = append(a, "-chardev", opts, "-serial", "chardev:console")
	}
	return append(a,
		"-drive", "id=root,file="+c.Image+",format=raw,if=none,readonly=on",
		"-device", "virtio-blk-device,drive=root",
	)
}

// deviceArgs: the devices every VM has.
func deviceArgs() []string {
	return []string{
		// Entropy at once: systemd otherwise waits for the kernel's crng.
		"-object", "rng-random,id=rng,filename=/dev/urandom",
		"-device", "virtio-rng-device,rng=rng",
		// Free page reporting: the guest hands pages it no longer uses
		// back to the host, so an idle pod costs what it really uses,
		// not the most it ever touched.
		"-device", "virtio-balloon-device,free-page-reporting=on",
	}
}

// portArgs: the virtio-serial ports, each on a socket. (No virtio
// console: QEMU drops a console's output when the host is slow to read.)
func portArgs(c Config) []string {
	if len(c.Ports) == 0 {
		return nil
	}
	a := []string{"-device", "virtio-serial-device,max_ports=" + strconv.Itoa(len(c.Ports)+1)}
	for i, p := range c.Ports {
		id := "port" + strconv.Itoa(i)
		a = append(a,
			"-chardev", "socket,id="+id+",path="+p.Socket,
			"-device", "virtserialport,chardev="+id+",name="+p.Name,
		)
	}
	return a
}

// tapArgs: a virtio-net device per tap, on its inherited descriptor.
func tapArgs(c Config) []string {
	var a []string
	for i, t := range c.Taps {
		id := "net" + strconv.Itoa(i)
		// No vhost: these hosts have no /dev/vhost-net.
		a = append(a,
			"-netdev", "tap,id="+id+",fd="+strconv.Itoa(TapFD(i)),
			"-device", "virtio-net-device,netdev="+id+",mac="+t.MAC,
		)
	}
	return a
}

// shareArgs: the shared directories, over 9p or virtiofs.
func shareArgs(c Config) []string {
	var a []string
	for i, s := range c.Shares {
		id := "fs" + strconv.Itoa(i)
		if s.Transport == Virtiofs {
			a = append(a,
				"-chardev", "socket,id="+id+",path="+s.Socket,
				"-device", "vhost-user-fs-device,chardev="+id+",tag="+s.Tag,
			)
			continue
		}
		// multidevs=remap: the pod share is a tree of mounts (one file
		// system per app rootfs, volume...); QEMU keeps inode numbers
		// unique across them instead of warning of collisions.
		opts := "local,id=" + id + ",path=" + s.Path + ",security_model=passthrough,multidevs=remap"
		if s.ReadOnly {
			opts += ",readonly=on"
		}
		a = append(a,
			"-fsdev", opts,
			"-device", "virtio-9p-device,fsdev="+id+",mount_tag="+s.Tag,
		)
	}
	return a
}
