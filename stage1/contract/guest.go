package contract

import "path"

// Where things are inside the guest.
const (
	// PodMount is where the guest mounts the pod share (PodTag).
	PodMount = "/pod"
	// ConfigMount is the pod's configuration in the guest.
	ConfigMount = PodMount + "/" + ShareConfig
	// JournalMount is where the guest binds the pod share's journal.
	JournalMount = "/var/log/journal"
	// GuestProgram is our program in the guest image: the pre-init (the
	// kernel's init=) and, by subcommand, the I/O forwarder (and exit
	// reporter), the agent and the event sender that units run.
	GuestProgram = "/usr/lib/stage1/stage1-guest"
	// GuestProgramDir is GuestProgram's directory, relative to the guest
	// image's root (where rootfs-builder puts it).
	GuestProgramDir = "usr/lib/stage1"
	// Systemd is what the pre-init execs as PID 1.
	Systemd = "/usr/lib/systemd/systemd"
	// Systemctl is how guest programs ask systemd for a status or a
	// power-off.
	Systemctl = "/usr/bin/systemctl"
	// PortDir holds a symlink per named virtio-serial port, as udev
	// would make them (the guest runs no udev).
	PortDir = "/dev/virtio-ports"
	// IODir holds each app's stdin, stdout and stderr FIFOs (AppFIFO),
	// made by the I/O forwarder before any app starts.
	IODir = "/run/stage1/io"
	// IOConfigSocket is where the I/O forwarder, started at boot, waits
	// for the configure program to pass it the pod's IOConfig; it
	// answers once the apps' FIFOs and the agent are up.
	IOConfigSocket = "/run/stage1/io-config"
	// MarkDir is where systemd makes the pod's marks: the FIFOs of
	// ReadySocket and SettledSocket (ListenFIFO=), made when the units
	// they are ordered after have started. The I/O forwarder watches it
	// and tells the host, so no notifier process is started for either.
	MarkDir = "/run/stage1/marks"
	// RuntimeUnitDir is where the pre-init installs the pod's units.
	RuntimeUnitDir = "/run/systemd/system"
	// TTYPath is the terminal an interactive app gets when run's stdin is
	// a terminal: a link to the pseudo-terminal the I/O forwarder made,
	// which relays it over the stdout and stdin ports.
	TTYPath = "/run/stage1/io/tty"
)

// Stage2Dir, relative to the stage1 rootfs, holds one directory per app
// (rkt's layout): <app>/manifest and <app>/rootfs.
const Stage2Dir = "opt/stage2"

// AppRootfsRel is app's root file system relative to the stage1 rootfs, and
// to the pod share.
func AppRootfsRel(app string) string { return path.Join(Stage2Dir, app, "rootfs") }

// AppManifestRel is app's image manifest relative to the stage1 rootfs.
func AppManifestRel(app string) string { return path.Join(Stage2Dir, app, "manifest") }

// AppRootfs is app's root file system in the guest.
func AppRootfs(app string) string { return path.Join(PodMount, AppRootfsRel(app)) }

// Streams of an app, as FIFO name suffixes in IODir.
const (
	Stdin  = "stdin"
	Stdout = "stdout"
	Stderr = "stderr"
)

// AppFIFO is app's FIFO for stream (Stdin, Stdout or Stderr) in the guest.
func AppFIFO(app, stream string) string { return path.Join(IODir, app+"."+stream) }

// Units the host generates and the guest image ships that refer to one
// another by name.
const (
	// BootTarget is what the guest boots into (systemd.unit=): systemd
	// up and ConfigureService waiting for the pod (the template point).
	BootTarget = "stage1-boot.target"
	// ConfigureService waits for the pod's configuration (PodConfig),
	// applies it and exits; its OnSuccess= (a static unit of the image)
	// starts PodTarget.
	ConfigureService = "stage1-configure.service"
	// PodTarget pulls in the whole pod: ConfigureService's end starts it.
	PodTarget = "stage1-pod.target"
	// IOService forwards the apps' standard streams to the host: a unit
	// of the image, started at boot, before the template point.
	IOService = "stage1-io.service"
	// JournalSockets are journald's sockets (units of the image), the
	// pod's like journald.
	JournalSockets = "systemd-journald.socket systemd-journald-dev-log.socket"
	// JournalService is the guest's journald (its unit is in the image).
	JournalService = "systemd-journald.service"
	// ReadySocket marks (ReadyMark) that every app has been started.
	ReadySocket = "stage1-ready.socket"
	// SettledSocket marks (SettledMark) that the guest's boot is over.
	SettledSocket = "stage1-settled.socket"
	// MarkService is the service the mark sockets name (systemd refuses
	// a socket without one). Nothing writes to a mark, so it never runs;
	// if anything did, it would end at once.
	MarkService = "stage1-mark.service"
	// SelftestTarget is the guest image's boot self-test (no pod).
	SelftestTarget = "stage1-selftest.target"
)

// The marks' names in MarkDir.
const (
	ReadyMark   = "ready"
	SettledMark = "settled"
)

// WarmApp is the app a guest making a template starts, and lets end,
// before the template point, so that its clones' systemd and kernel start
// and end the pod's apps with code already translated (guest.warmUp). Its
// unit, AppService(WarmApp), is in the guest image (rootfs-builder makes
// it with the units package, like any app's); it runs GuestProgram's mark
// command in a root the warm-up makes at AppRootfs(WarmApp). No pod's app
// can have the name: names starting with stage1- are refused.
const WarmApp = "stage1-warm-app"

// AppService is the unit name of app's service (rkt's naming).
func AppService(app string) string { return app + ".service" }
