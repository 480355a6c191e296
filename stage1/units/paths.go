// Package units writes the systemd units that run a pod's apps inside the
// guest: one service per app, the I/O forwarder, the readiness notifier and
// the target that pulls them all in. It is a pure translation from the pod's
// manifests to unit files (the only I/O is reading user and group databases
// from the apps' own rootfs), so that every rule of appc and rkt it applies
// can be unit-tested without a VM.
package units

import "path"

// Where things are inside the guest. The host directory <pod>/stage1/rootfs
// is shared into the guest at PodMount.
const (
	// PodMount is where the pod's stage1 rootfs appears in the guest.
	PodMount = "/pod"
	// GuestProgram is our program in the guest image; its subcommands
	// (io, app-exited, event) are named in the units.
	GuestProgram = "/usr/lib/stage1/stage1-guest"
	// IODir holds the per-app FIFOs that the I/O forwarder creates before
	// any app starts.
	IODir = "/run/stage1/io"
)

// Unit names other than the apps'.
const (
	// PodTarget pulls in the whole pod: boot the guest with
	// systemd.unit=stage1-pod.target.
	PodTarget = "stage1-pod.target"
	// IOService forwards the apps' standard streams to the host.
	IOService = "stage1-io.service"
	// AgentService is the guest agent (a static unit of the guest image).
	AgentService = "stage1-agent.service"
	// JournalService is the guest's journald (its unit is in the guest
	// image).
	JournalService = "systemd-journald.service"
	// ReadyService tells the host that every app has been started.
	ReadyService = "stage1-ready.service"
	// SettledService tells the host that the guest's boot is over.
	SettledService = "stage1-settled.service"
)

// AppRootfs is app's root directory in the guest.
func AppRootfs(app string) string {
	return path.Join(PodMount, "opt/stage2", app, "rootfs")
}

// TTYPath is the guest terminal an interactive app gets when rkt run's stdin
// is a terminal: the first (only) virtio console port.
const TTYPath = "/dev/hvc0"

// ExitedService is the instance of the exited template for app; with an
// empty app, the template itself.
func ExitedService(app string) string { return "stage1-app-exited@" + app + ".service" }

// AppService is the unit name of app's service (rkt's naming).
func AppService(app string) string { return app + ".service" }

// StdinFIFO, StdoutFIFO and StderrFIFO are app's standard streams in the
// guest.
func StdinFIFO(app string) string  { return path.Join(IODir, app+".stdin") }
func StdoutFIFO(app string) string { return path.Join(IODir, app+".stdout") }
func StderrFIFO(app string) string { return path.Join(IODir, app+".stderr") }
