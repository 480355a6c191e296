package contract

import (
	"path/filepath"
	"strconv"
)

// Paths relative to the stage1 rootfs. The guest sees none of it but the
// apps' root file systems, the journal and the empty volumes, through the
// pod share.
const (
	// Kernel is the guest kernel pods boot (a compressed bzImage).
	Kernel     = "bzImage"
	GuestImage = "guest.img"
	// QEMUDir holds bin/qemu-system-x86_64, lib/ (with the dynamic
	// loader) and share/ (firmware).
	QEMUDir = "qemu"
	// Jailer confines QEMU and virtiofsd before executing them (the
	// jailer program; docs/security.md).
	Jailer = "jailer"
	// VMContents lists the SHA-256 of every file the VM is made of
	// (Kernel, GuestImage, everything under QEMUDir), one "<hex>  <path>"
	// line each, written when the ACI is built. A template is keyed by
	// it: the ACI's files all have the same time, so a rebuilt guest
	// image of the same size is told apart by its contents only.
	VMContents = "vm-contents.sha256"
	// MaxVMContents bounds what run reads of VMContents.
	MaxVMContents = 64 << 10
	// StatusDir must exist (empty) in the image: rkt touches it. It
	// holds one file per app with its exit status (decimal), which
	// `rkt status` reads. The run entry point writes them from the
	// guest's exited events.
	StatusDir = "rkt/status"
	// SupervisorStatus is the symlink (to "ready") that
	// `rkt status --wait-ready` waits for.
	SupervisorStatus = "rkt/supervisor-status"
	// JournalDir receives the pod's persistent journal (rkt's place).
	JournalDir = "var/log/journal"
	// EmptyVolumesDir holds the pod's empty volumes.
	EmptyVolumesDir = "volumes"
)

// The pod's configuration for the guest beside PodConfig (which carries
// its units, accounts and network): files the host writes for the guest,
// in ConfigDir on the host and ConfigMount in the guest (read-only). Paths
// relative to it.
const (
	// EnvDir holds one file per app with the app's environment
	// (EncodeEnv), for the commands enter runs.
	EnvDir = "env"
)

// Paths relative to the pod directory.
const (
	// PodManifest is the pod manifest rkt wrote (JSON, appc schema).
	PodManifest = "pod"
	// PidFile is the run entry point's PID, for rkt (enter, the start
	// time) and for stop.
	PidFile = "pid"
	// VMDir holds the VM's host-side files: port sockets, QMP, console
	// log, timings, virtiofsd sockets and logs, volume binds, and the
	// guest's configuration (ConfigDir). Mode 0700.
	VMDir = "vm"
	// TemplateSocketsDir holds the sockets of the VM making a template
	// (QMP, its ports) while it runs: beside the pod's own sockets rather
	// than in the template store, whose paths can be too long for a
	// socket's (107 bytes).
	TemplateSocketsDir = "vm/template"
	// ConfigDir is the pod's configuration for the guest, read-only in
	// the pod share.
	ConfigDir = "vm/config"
	// ShareDir is the pod share: a tree of bind mounts on a read-only
	// tmpfs (see shares.go), built by run, removed by run and gc.
	ShareDir = "vm/share"
	// AgentSocket is where enter and stop reach the guest agent (through
	// the run entry point, which proxies each connection as one stream).
	// Mode 0600: root only.
	AgentSocket = "agent.sock"
	// QEMUPidFile holds the QEMU process ID, for stop --force and gc.
	QEMUPidFile = "vm/qemu.pid"
	// MemcgFile names the pod's memory cgroup (its directory), for gc.
	MemcgFile = "vm/memcg"
	// JailDir is where the jailer mounts QEMU's root, in a mount
	// namespace of its own: on the host it stays an empty directory.
	JailDir = "vm/jail"
	// QMPSocket is QEMU's control socket (QMP), for the run entry point.
	QMPSocket = "vm/qmp.sock"
	// VirtiofsSockets matches the virtiofsd sockets (VirtiofsSocket).
	VirtiofsSockets = "vm/virtiofs*.sock"
)

// Entry points: the annotation suffix (after coreos.com/rkt/stage1/) and the
// file in the stage1 rootfs.
var EntryPoints = []struct{ Name, File string }{
	{"run", "init"},
	{"enter", "enter"},
	{"gc", "gc"},
	{"stop", "stop"},
}

// VirtiofsSocket is the socket of the virtiofsd serving the VM's i-th
// share, relative to the pod directory.
func VirtiofsSocket(i int) string {
	return filepath.Join("vm", "virtiofs"+strconv.Itoa(i)+".sock")
}

// Stage1Rootfs is the stage1 rootfs inside a pod directory.
func Stage1Rootfs(podDir string) string {
	return filepath.Join(podDir, "stage1", "rootfs")
}
