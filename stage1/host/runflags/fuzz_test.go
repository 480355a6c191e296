package runflags

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
)

// argSep separates the arguments of one fuzz input: a NUL byte, which no
// real argument can contain.
const argSep = "\x00"

// FuzzParse: whatever the command line, Parse must not panic, must fail
// with a usage error, and what it accepts must be a command line rkt's
// stage0 could have passed: a pod UUID, at least one network (none of them
// the host's), an IPC mode and DNS modes it knows, a host name that cannot
// carry anything into the guest's kernel command line or /etc/hosts. And
// the options, passed again as rkt passes them, parse to the same options.
func FuzzParse(f *testing.F) {
	for _, args := range [][]string{
		{"--net=default", uuid},
		{"--debug", "--net=default,mynet", "--interactive", "--mds-token=tok", "--local-config=/etc/rkt",
			"--hostname=h1", "--dns-conf-mode=resolv=host,hosts=stage0", "--disable-capabilities-restriction",
			"--disable-paths", "--disable-seccomp", "--mutable", "--ipc=private", uuid},
		{"--net= , ,x", uuid},
		{"--net=host", uuid},
		{"--hostname=a b", uuid},
		{"--hostname=web\n10.0.0.1 evil", uuid},
		{"--hostname=h init=/bin/sh", uuid},
		{"--dns-conf-mode=resolv=a,resolv=b", uuid},
		{"--ipc=parent", uuid},
		{"--private-users=0:65536", uuid},
		{"-net", "x", "--", uuid},
		{"--debug=false", uuid},
		{uuid, "extra"},
		{"6C6D3E1E-2B7F-4A35-9D41-1E0C3F4B5A21"},
		{"6c6d3e1e2b7f4a359d411e0c3f4b5a21"},
	} {
		f.Add(strings.Join(args, argSep))
	}
	f.Fuzz(func(t *testing.T, in string) {
		var args []string
		if in != "" {
			args = strings.Split(in, argSep)
		}
		o, err := Parse(args)
		if err != nil {
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("Parse(%q): %v is not a usage error", args, err)
			}
			if o != nil {
				t.Fatalf("Parse(%q): options %+v with an error", args, o)
			}
			return
		}
		checkOptions(t, args, o)
		again := rktArgs(o)
		o2, err := Parse(again)
		if err != nil {
			t.Fatalf("Parse(%q) accepted; as rkt passes it, %q fails: %v", args, again, err)
		}
		if !sameOptions(o, o2) {
			t.Fatalf("Parse(%q) = %+v, but %q gives %+v", args, o, again, o2)
		}
	})
}

func checkOptions(t *testing.T, args []string, o *Options) {
	t.Helper()
	if o.UUID == nil {
		t.Fatalf("Parse(%q): no UUID", args)
	}
	if u, err := types.NewUUID(o.RawUUID); err != nil || *u != *o.UUID {
		t.Fatalf("Parse(%q): raw UUID %q does not give %v", args, o.RawUUID, o.UUID)
	}
	if len(o.Nets) == 0 {
		t.Fatalf("Parse(%q): no network", args)
	}
	for _, n := range o.Nets {
		if n == "" || n == "host" || strings.TrimSpace(n) != n || strings.Contains(n, ",") {
			t.Fatalf("Parse(%q): network %q", args, n)
		}
	}
	if o.IPC != "auto" && o.IPC != "private" {
		t.Fatalf("Parse(%q): --ipc=%q accepted", args, o.IPC)
	}
	if o.PrivateUsers != "" {
		t.Fatalf("Parse(%q): --private-users accepted", args)
	}
	if keys := slices.Sorted(maps.Keys(o.DNSConfMode)); !slices.Equal(keys, []string{"hosts", "resolv"}) {
		t.Fatalf("Parse(%q): DNS modes %v", args, o.DNSConfMode)
	}
	for k, v := range o.DNSConfMode {
		if v == "" || strings.Contains(v, ",") {
			t.Fatalf("Parse(%q): DNS mode %s=%q", args, k, v)
		}
	}
	h := o.PodHostname()
	if !validHostname(h) {
		t.Fatalf("Parse(%q): pod host name %q", args, h)
	}
	// Independently of validHostname: nothing that could split the
	// kernel command line or a line of /etc/hosts.
	for i := 0; i < len(h); i++ {
		if c := h[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '#' {
			t.Fatalf("Parse(%q): host name %q has byte %#x", args, h, c)
		}
	}
}

// rktArgs is the command line rkt's stage0 passes for o, in its order.
func rktArgs(o *Options) []string {
	var a []string
	flag := func(on bool, s string) {
		if on {
			a = append(a, s)
		}
	}
	flag(o.Debug, "--debug")
	a = append(a, "--net="+strings.Join(o.Nets, ","))
	flag(o.Interactive, "--interactive")
	flag(o.MDSToken != "", "--mds-token="+o.MDSToken)
	a = append(a, "--local-config="+o.LocalConfig)
	flag(o.Hostname != "", "--hostname="+o.Hostname)
	a = append(a, "--dns-conf-mode=resolv="+o.DNSConfMode["resolv"]+",hosts="+o.DNSConfMode["hosts"])
	flag(o.DisableCaps, "--disable-capabilities-restriction")
	flag(o.DisablePaths, "--disable-paths")
	flag(o.DisableSeccomp, "--disable-seccomp")
	flag(o.Mutable, "--mutable")
	a = append(a, "--ipc="+o.IPC)
	return append(a, o.RawUUID)
}

func sameOptions(a, b *Options) bool {
	return a.Debug == b.Debug && slices.Equal(a.Nets, b.Nets) && a.Interactive == b.Interactive &&
		a.PrivateUsers == b.PrivateUsers && a.MDSToken == b.MDSToken && a.LocalConfig == b.LocalConfig &&
		a.Hostname == b.Hostname && maps.Equal(a.DNSConfMode, b.DNSConfMode) &&
		a.DisableCaps == b.DisableCaps && a.DisablePaths == b.DisablePaths &&
		a.DisableSeccomp == b.DisableSeccomp && a.Mutable == b.Mutable && a.IPC == b.IPC &&
		*a.UUID == *b.UUID && a.RawUUID == b.RawUUID
}
