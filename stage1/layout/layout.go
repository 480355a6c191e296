// Package layout names the files of the stage1 image (the ACI rootfs) and of
// the pod directory that more than one program reads or writes.
package layout

import (
	"path/filepath"
	"strconv"
)

// Paths relative to the stage1 rootfs.
const (
	// Kernel is the guest kernel pods boot (a compressed bzImage).
	Kernel     = "bzImage"
	GuestImage = "guest.img"
	// QEMUDir holds bin/qemu-system-x86_64, lib/ (with the dynamic
	// loader) and share/ (firmware).
	QEMUDir = "qemu"
	// StatusDir must exist (empty) in the image: rkt touches it.
	StatusDir = "rkt/status"
)

// Paths relative to the pod directory.
const (
	// AgentSocket is where enter and stop reach the guest agent (through
	// the run entry point, which proxies each connection as one stream).
	// Mode 0600: root only.
	AgentSocket = "agent.sock"
	// QEMUPidFile holds the QEMU process ID, for stop --force and gc.
	QEMUPidFile = "vm/qemu.pid"
	// VolumeBindsDir holds the non-recursive bind mounts of host volumes
	// whose submounts must stay hidden (recursive=false).
	VolumeBindsDir = "vm/volumes"
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
