package runflags

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
)

const uuid = "6c6d3e1e-2b7f-4a35-9d41-1e0c3f4b5a21"

func TestParseFullV6(t *testing.T) {
	// Every flag of interface version 6, in rkt's order.
	o, err := Parse([]string{"--debug", "--net=default,mynet", "--interactive", "--mds-token=tok",
		"--local-config=/etc/rkt", "--hostname=h1", "--dns-conf-mode=resolv=host,hosts=stage0",
		"--disable-capabilities-restriction", "--disable-paths", "--disable-seccomp",
		"--mutable", "--ipc=private", uuid})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Debug || !o.Interactive || !o.DisableCaps || !o.DisablePaths || !o.DisableSeccomp || !o.Mutable {
		t.Errorf("bool flags lost: %+v", o)
	}
	if !slices.Equal(o.Nets, []string{"default", "mynet"}) || o.Hostname != "h1" || o.MDSToken != "tok" || o.IPC != "private" {
		t.Errorf("value flags lost: %+v", o)
	}
	if o.DNSConfMode["resolv"] != "host" || o.DNSConfMode["hosts"] != "stage0" {
		t.Errorf("dns-conf-mode %v", o.DNSConfMode)
	}
	if o.UUID.String() != uuid {
		t.Errorf("uuid %s", o.UUID)
	}
}

func TestParseDefaults(t *testing.T) {
	o, err := Parse([]string{"--net=default", uuid})
	if err != nil {
		t.Fatal(err)
	}
	if o.Debug || o.LocalConfig != "/etc/rkt" || o.IPC != "auto" || o.DNSConfMode["resolv"] != "default" {
		t.Errorf("defaults %+v", o)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want error
	}{
		{[]string{}, ErrUsage},
		{[]string{"--net=default"}, ErrUsage},
		{[]string{"not-a-uuid"}, ErrUsage},
		// appc would read it as a UUID; rkt, passing it back, as a flag.
		{[]string{"--", "-" + strings.ReplaceAll(uuid, "-", "")}, ErrUsage},
		{[]string{"--bogus", uuid}, ErrUsage},
		{[]string{uuid, "extra"}, ErrUsage},
		{[]string{"--dns-conf-mode=foo=bar", uuid}, ErrUsage},
		{[]string{"--ipc=weird", uuid}, ErrUsage},
		{[]string{"--private-users=0:65536", uuid}, ErrUnsupported},
		{[]string{"--ipc=parent", uuid}, ErrUnsupported},
		{[]string{"--net=host", uuid}, ErrUnsupported},
		// The host name goes to the guest kernel's command line and to
		// /etc/hosts: nothing but a host name.
		{[]string{"--hostname= 0", uuid}, ErrUsage},
		{[]string{"--hostname=h init=/bin/sh", uuid}, ErrUsage},
		{[]string{"--hostname=web\n10.0.0.1 evil", uuid}, ErrUsage},
		{[]string{"--hostname=a..b", uuid}, ErrUsage},
		{[]string{"--hostname=" + strings.Repeat("a", 65), uuid}, ErrUsage},
	} {
		if _, err := Parse(tt.args); !errors.Is(err, tt.want) {
			t.Errorf("Parse(%q) = %v, want %v", tt.args, err, tt.want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--bogus", "x"}, {"--net=host", "4c5f9d2e-8f0e-4d8c-9b3a-2f6f1c0d7e11"}} {
		_, err := Parse(args)
		if !errors.Is(err, cli.ErrUsage) {
			t.Errorf("Parse(%q) = %v, want a usage error", args, err)
		}
	}
}

func TestPodHostname(t *testing.T) {
	o, err := Parse([]string{"4c5f9d2e-8f0e-4d8c-9b3a-2f6f1c0d7e11"})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.PodHostname(); got != "rkt-4c5f9d2e-8f0e-4d8c-9b3a-2f6f1c0d7e11" {
		t.Errorf("default hostname %q", got)
	}
	o, err = Parse([]string{"--hostname=web-1.example.com", "4c5f9d2e-8f0e-4d8c-9b3a-2f6f1c0d7e11"})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.PodHostname(); got != "web-1.example.com" {
		t.Errorf("hostname %q, want web-1.example.com", got)
	}
}
