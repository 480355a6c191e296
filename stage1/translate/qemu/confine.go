package qemu

import (
	"fmt"
	"strconv"
	"strings"
)

// SandboxOptions turn on QEMU's own seccomp filter (-sandbox), with every
// optional set of system calls denied: obsolete ones, changing user or
// group IDs, starting processes or namespaces, and changing scheduling
// (docs/security.md).
const SandboxOptions = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// confineArgs: the VM's name, the marker the host knows its QEMU by, and
// QEMU's seccomp filter when the binary has one (ours; a host QEMU may
// have been built without).
func confineArgs(c Config) []string {
	var a []string
	if c.Name != "" {
		a = append(a, "-name", "guest="+c.Name)
	}
	if c.Binary.Bundled {
		a = append(a, "-sandbox", SandboxOptions)
	}
	return a
}

// qmpArgs: QMP on the inherited listening socket, or on a socket QEMU
// makes itself.
func qmpArgs(c Config) []string {
	if c.QMPFD > 0 {
		return []string{
			"-chardev", "socket,id=qmp,fd=" + strconv.Itoa(c.QMPFD) + ",server=on,wait=off",
			"-mon", "chardev=qmp,mode=control",
		}
	}
	if c.QMPSocket != "" {
		return []string{"-qmp", "unix:" + c.QMPSocket + ",server=on,wait=off"}
	}
	return nil
}

// confineProblems: the name must be one QEMU option value, and the QMP
// descriptor one no tap has.
func (c Config) confineProblems() []string {
	var probs []string
	if strings.Contains(c.Name, ",") {
		probs = append(probs, fmt.Sprintf("VM name %q contains a comma", c.Name))
	}
	if c.QMPFD != 0 && c.QMPFD < TapFD(len(c.Taps)) {
		probs = append(probs, fmt.Sprintf("QMP descriptor %d is not after the taps' (from %d)", c.QMPFD, TapFD(0)))
	}
	return probs
}
