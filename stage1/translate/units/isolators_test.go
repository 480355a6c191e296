package units

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// appWith is app "a" (uid as given) with the isolators as name, value pairs.
func appWith(t *testing.T, user string, isos ...string) App {
	t.Helper()
	a := simpleApp("a")
	a.App.User, a.App.Group = user, user
	for i := 0; i < len(isos); i += 2 {
		a.App.Isolators = append(a.App.Isolators, isolator(t, isos[i], isos[i+1]))
	}
	return a
}

// filter is the app's syscall filter: mode ("allow" or "deny") and names.
func (p parsed) filter(t *testing.T) (mode string, names []string) {
	t.Helper()
	for i, v := range p.all("Service", "SystemCallFilter") {
		m := "allow"
		if strings.HasPrefix(v, "~") {
			m, v = "deny", v[1:]
		}
		if i > 0 && m != mode {
			t.Fatalf("SystemCallFilter lines mix modes")
		}
		mode = m
		names = append(names, strings.Fields(v)...)
	}
	return mode, names
}

func TestCapabilities(t *testing.T) {
	def := strings.Join(DefaultCapabilities, " ")
	tests := []struct {
		name, user   string
		isos         []string
		bnd, ambient string // "" for no such line
	}{
		{"default root", "0", nil, def, ""},
		// rkt's behaviour: the default set only bounds a non-root app.
		{"default user gets none", "1000", nil, def, ""},
		{"retain exactly", "0", []string{"os/linux/capabilities-retain-set", `{"set":["CAP_NET_ADMIN","cap_kill"]}`}, "CAP_NET_ADMIN CAP_KILL", ""},
		{"retain user", "1000", []string{"os/linux/capabilities-retain-set", `{"set":["CAP_NET_BIND_SERVICE"]}`}, "CAP_NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE"},
		{"retain sets merge", "0", []string{
			"os/linux/capabilities-retain-set", `{"set":["CAP_KILL"]}`,
			"os/linux/capabilities-retain-set", `{"set":["CAP_CHOWN","CAP_KILL"]}`}, "CAP_KILL CAP_CHOWN", ""},
		{"remove from default, user", "1000", []string{"os/linux/capabilities-remove-set", `{"set":["CAP_CHOWN"]}`},
			strings.Join(slices.DeleteFunc(slices.Clone(DefaultCapabilities), func(c string) bool { return c == "CAP_CHOWN" }), " "), ""},
		{"remove from default", "0", []string{"os/linux/capabilities-remove-set", `{"set":["CAP_CHOWN","CAP_SYS_ADMIN"]}`},
			strings.Join(slices.DeleteFunc(slices.Clone(DefaultCapabilities), func(c string) bool { return c == "CAP_CHOWN" }), " "), ""},
		{"remove all", "1000", []string{"os/linux/capabilities-remove-set", `{"set":[` + `"` + strings.Join(DefaultCapabilities, `","`) + `"]}`},
			"~" + strings.Join(knownCapabilities, " "), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := generate(t, Pod{Apps: []App{appWith(t, tt.user, tt.isos...)}})["a.service"]
			if got := strings.Join(u.all("Service", "CapabilityBoundingSet"), "|"); got != tt.bnd {
				t.Errorf("CapabilityBoundingSet = %q, want %q", got, tt.bnd)
			}
			if got := strings.Join(u.all("Service", "AmbientCapabilities"), "|"); got != tt.ambient {
				t.Errorf("AmbientCapabilities = %q, want %q", got, tt.ambient)
			}
		})
	}
}

func TestSeccomp(t *testing.T) {
	tests := []struct {
		name   string
		isos   []string
		mode   string // "" for no filter
		has    []string
		hasNot []string
		errno  string
	}{
		{"default allow-list", nil, "allow", []string{"read", "clone", "statx", "clone3"}, []string{"mount", "reboot", "ptrace"}, ""},
		{"retain with errno", []string{"os/linux/seccomp-retain-set", `{"set":["read","write","@systemd/network-io"],"errno":"ENOSYS"}`},
			"allow", []string{"read", "write", "@network-io"}, []string{"clone"}, "38"},
		{"retain only empty", []string{"os/linux/seccomp-retain-set", `{"set":["@appc.io/empty"]}`}, "allow", []string{"@default"}, nil, ""},
		{"retain all opts out", []string{"os/linux/seccomp-retain-set", `{"set":["@appc.io/all","read"]}`}, "", nil, nil, ""},
		{"remove", []string{"os/linux/seccomp-remove-set", `{"set":["reboot","@rkt/default-blacklist"],"errno":"ENOTSUP"}`},
			"deny", []string{"reboot", "mount", "umount2"}, []string{"read"}, "95"},
		{"remove empty opts in to default", []string{"os/linux/seccomp-remove-set", `{"set":["@appc.io/empty","read"],"errno":"EPERM"}`},
			"allow", []string{"read", "clone"}, []string{"mount"}, "1"},
		{"unknown arch syscall kept", []string{"os/linux/seccomp-remove-set", `{"set":["vm86old"]}`}, "deny", []string{"vm86old"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := generate(t, Pod{Apps: []App{appWith(t, "0", tt.isos...)}})["a.service"]
			mode, names := u.filter(t)
			if mode != tt.mode {
				t.Fatalf("mode %q, want %q (%q)", mode, tt.mode, names)
			}
			for _, n := range tt.has {
				if !slices.Contains(names, n) {
					t.Errorf("%s not in filter", n)
				}
			}
			for _, n := range tt.hasNot {
				if slices.Contains(names, n) {
					t.Errorf("%s in filter", n)
				}
			}
			if got := strings.Join(u.all("Service", "SystemCallErrorNumber"), "|"); got != tt.errno {
				t.Errorf("SystemCallErrorNumber = %q, want %q", got, tt.errno)
			}
		})
	}
}

func TestOtherLinuxIsolators(t *testing.T) {
	a := appWith(t, "0",
		"os/linux/no-new-privileges", `true`,
		"os/linux/oom-score-adj", `-250`,
		"os/linux/cpu-shares", `512`)
	u := generate(t, Pod{Apps: []App{a}})["a.service"]
	for name, want := range map[string]string{"NoNewPrivileges": "yes", "OOMScoreAdjust": "-250", "CPUWeight": "50"} {
		if got := u.one(t, "Service", name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for shares, weight := range map[int]int{2: 1, 10: 1, 1024: 100, 2048: 200, 262144: 10000} {
		if got := cpuWeight(shares); got != weight {
			t.Errorf("cpuWeight(%d) = %d, want %d", shares, got, weight)
		}
	}
	u = generate(t, Pod{Apps: []App{appWith(t, "0", "os/linux/no-new-privileges", `false`)}})["a.service"]
	if got := u.all("Service", "NoNewPrivileges"); len(got) != 0 {
		t.Errorf("NoNewPrivileges = %q for false", got)
	}
}

func TestProtectedPaths(t *testing.T) {
	u := generate(t, Pod{Apps: []App{simpleApp("a")}})["a.service"]
	ro, hidden := u.all("Service", "ReadOnlyPaths"), u.all("Service", "InaccessiblePaths")
	if !slices.Contains(ro, "-/pod/opt/stage2/a/rootfs/proc/sys/vm/panic_on_oom") || !slices.Contains(hidden, "-/pod/opt/stage2/a/rootfs/sys/firmware") {
		t.Errorf("ReadOnlyPaths %q, InaccessiblePaths %q", ro, hidden)
	}
}

func TestDisableFlags(t *testing.T) {
	a := appWith(t, "1000",
		"os/linux/capabilities-retain-set", `{"set":["CAP_KILL"]}`,
		"os/linux/seccomp-remove-set", `{"set":["mkdir"]}`)
	u := generate(t, Pod{Apps: []App{a}, DisableCapabilities: true, DisableSeccomp: true, DisablePaths: true})["a.service"]
	for _, name := range []string{"CapabilityBoundingSet", "AmbientCapabilities", "SystemCallFilter", "SystemCallErrorNumber", "ReadOnlyPaths", "InaccessiblePaths"} {
		if got := u.all("Service", name); len(got) != 0 {
			t.Errorf("%s = %q with the insecure options", name, got)
		}
	}
}

func TestSysctl(t *testing.T) {
	a := appWith(t, "0", "os/unix/sysctl", `{"net.ipv4.ip_forward":"1","kernel.shmmni":"8192"}`)
	b := simpleApp("b")
	units := generate(t, Pod{Apps: []App{a, b}})
	s, ok := units[SysctlService]
	if !ok {
		t.Fatalf("no %s", SysctlService)
	}
	want := [][]string{{"", contract.GuestProgram, "sysctl", "kernel.shmmni=8192", "net.ipv4.ip_forward=1"}}
	if got := s.exec(t, "ExecStart"); !equalCmds(got, want) {
		t.Errorf("ExecStart = %q, want %q", got, want)
	}
	for _, app := range []string{"a.service", "b.service"} {
		if !slices.Contains(units[app].all("Unit", "Requires"), SysctlService) || !slices.Contains(units[app].all("Unit", "After"), SysctlService) {
			t.Errorf("%s is not ordered after %s", app, SysctlService)
		}
	}
	if _, ok := generate(t, Pod{Apps: []App{simpleApp("c")}})[SysctlService]; ok {
		t.Errorf("%s without sysctls", SysctlService)
	}
}

func TestIsolatorErrors(t *testing.T) {
	tests := []struct {
		name string
		isos []string
		want error
		text string
	}{
		{"global sysctl", []string{"os/unix/sysctl", `{"kernel.panic":"1"}`}, ErrUnsupportedIsolator, "kernel.panic"},
		{"bad sysctl key", []string{"os/unix/sysctl", `{"net..x":"1"}`}, ErrInvalidPod, "net..x"},
		{"sysctl newline", []string{"os/unix/sysctl", `{"net.x":"1\n2"}`}, ErrInvalidPod, "net.x"},
		{"unknown capability", []string{"os/linux/capabilities-retain-set", `{"set":["CAP_FLY"]}`}, ErrInvalidPod, "CAP_FLY"},
		{"both capability sets", []string{
			"os/linux/capabilities-retain-set", `{"set":["CAP_KILL"]}`,
			"os/linux/capabilities-remove-set", `{"set":["CAP_KILL"]}`}, ErrInvalidPod, "cannot be used together"},
		{"both seccomp sets", []string{
			"os/linux/seccomp-retain-set", `{"set":["read"]}`,
			"os/linux/seccomp-remove-set", `{"set":["mount"]}`}, ErrInvalidPod, "cannot be used together"},
		{"two seccomp retain-sets", []string{
			"os/linux/seccomp-retain-set", `{"set":["read"]}`,
			"os/linux/seccomp-retain-set", `{"set":["write"]}`}, ErrInvalidPod, "more than once"},
		{"unknown errno", []string{"os/linux/seccomp-remove-set", `{"set":["mount"],"errno":"EFOO"}`}, ErrInvalidPod, "EFOO"},
		{"unknown wildcard", []string{"os/linux/seccomp-remove-set", `{"set":["@example.com/x"]}`}, ErrUnsupportedIsolator, "@example.com/x"},
		{"bad syscall name", []string{"os/linux/seccomp-remove-set", `{"set":["mount umount"]}`}, ErrInvalidPod, "mount umount"},
		{"remove all syscalls", []string{"os/linux/seccomp-remove-set", `{"set":["@appc.io/all"]}`}, ErrInvalidPod, "@appc.io/all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(Pod{Apps: []App{appWith(t, "0", tt.isos...)}})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %v, want %v naming %q", err, tt.want, tt.text)
			}
		})
	}
	// Two apps setting one sysctl differently.
	a := appWith(t, "0", "os/unix/sysctl", `{"net.ipv4.ip_forward":"1"}`)
	b := appWith(t, "0", "os/unix/sysctl", `{"net.ipv4.ip_forward":"0"}`)
	b.Name = "b"
	if _, err := Generate(Pod{Apps: []App{a, b}}); !errors.Is(err, ErrInvalidPod) {
		t.Errorf("conflicting sysctls: err = %v", err)
	}
}
