package qemu

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// The bundled QEMU turns its seccomp filter on, with every optional set
// denied; a host QEMU, which may lack seccomp, does not get -sandbox.
func TestArgvSandbox(t *testing.T) {
	a := Argv(validConfig())
	i := slices.Index(a, "-sandbox")
	if i < 0 || a[i+1] != "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny" {
		t.Errorf("bundled QEMU: %q", a)
	}
	c := validConfig()
	c.Binary = Binary{Path: "/usr/bin/qemu-system-x86_64"}
	if slices.Contains(Argv(c), "-sandbox") {
		t.Error("-sandbox for a host QEMU")
	}
}

// The name is QEMU's marker (-name guest=...), one option value.
func TestArgvName(t *testing.T) {
	c := validConfig()
	c.Name = "/var/lib/rkt/pods/run/u"
	if !strings.Contains(strings.Join(Argv(c), " "), "-name guest=/var/lib/rkt/pods/run/u") {
		t.Errorf("%q", Argv(c))
	}
	if slices.Contains(Argv(validConfig()), "-name") {
		t.Error("-name without a name")
	}
	c.Name = "/pod,process=x"
	if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("name with a comma: %v", err)
	}
}

// QMP on an inherited listening socket (a jailed QEMU) or on a path.
func TestArgvQMPOnDescriptor(t *testing.T) {
	c := validConfig()
	c.QMPSocket = "/pod/vm/qmp.sock"
	if !strings.Contains(strings.Join(Argv(c), " "), "-qmp unix:/pod/vm/qmp.sock,server=on,wait=off") {
		t.Errorf("%q", Argv(c))
	}
	c.QMPSocket, c.QMPFD = "", TapFD(0)
	joined := strings.Join(Argv(c), " ")
	if !strings.Contains(joined, "-chardev socket,id=qmp,fd=3,server=on,wait=off -mon chardev=qmp,mode=control") || strings.Contains(joined, "-qmp") {
		t.Errorf("%q", joined)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	c.Taps = []Tap{{File: nil, MAC: "02:00:00:00:00:01"}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "QMP descriptor 3") {
		t.Errorf("QMP on a tap's descriptor: %v", err)
	}
}
