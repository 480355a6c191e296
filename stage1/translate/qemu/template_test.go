package qemu

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// argAfter is the value after flag's first occurrence whose value
// starts with prefix ("" if none).
func argAfter(argv []string, flag, prefix string) string {
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == flag && strings.HasPrefix(argv[i+1], prefix) {
			return argv[i+1]
		}
	}
	return ""
}

// A template's VM writes guest RAM through to the file; a clone maps it
// private (copy-on-write) from a read-only descriptor and waits for its
// state; both under KVM and under TCG, with nothing accelerator-specific
// in how RAM is backed or the state comes in.
func TestArgvTemplate(t *testing.T) {
	for _, accel := range []Accel{TCG, KVM} {
		maker := validConfig()
		maker.Accel, maker.QMPSocket = accel, "/pod/qmp.sock"
		maker.RAMFile, maker.RAMShared = "/tpl/ram", true
		clone := maker
		clone.RAMShared, clone.Incoming = false, true
		for _, c := range []Config{maker, clone} {
			if err := c.Validate(); err != nil {
				t.Fatalf("%s: %v", accel, err)
			}
		}
		m, cl := Argv(maker), Argv(clone)
		if got := argAfter(m, "-object", "memory-backend-file"); got != "memory-backend-file,id=ram,mem-path=/tpl/ram,size=128M,share=on" {
			t.Errorf("%s template RAM: %q", accel, got)
		}
		if got := argAfter(cl, "-object", "memory-backend-file"); got != "memory-backend-file,id=ram,mem-path=/tpl/ram,size=128M,share=off,x-cow=on" {
			t.Errorf("%s clone RAM: %q", accel, got)
		}
		for _, a := range [][]string{m, cl} {
			if argAfter(a, "-machine", "memory-backend=") != "memory-backend=ram" || argAfter(a, "-object", "memory-backend-memfd") != "" {
				t.Errorf("%s: guest RAM must be the file's backend only: %q", accel, a)
			}
		}
		if argAfter(cl, "-incoming", "") != "defer" || argAfter(m, "-incoming", "") != "" {
			t.Errorf("%s: only the clone waits for its state: %q / %q", accel, m, cl)
		}
		// Paused once loaded, until run resumes it.
		if !slices.Contains(cl, "-S") || slices.Contains(m, "-S") {
			t.Errorf("%s: only the clone starts paused: %q / %q", accel, m, cl)
		}
		// Beside RAM and the incoming state, the two command lines
		// are the same: the clone has the template's devices.
		strip := func(a []string) []string {
			var out []string
			for i := 0; i < len(a); i++ {
				if a[i] == "-S" {
					continue
				}
				if a[i] == "-incoming" || (a[i] == "-object" && strings.HasPrefix(a[i+1], "memory-backend-file")) {
					i++
					continue
				}
				out = append(out, a[i])
			}
			return out
		}
		if !slices.Equal(strip(m), strip(cl)) {
			t.Errorf("%s: template and clone differ beyond RAM:\n%q\n%q", accel, m, cl)
		}
	}
}

func TestValidateTemplate(t *testing.T) {
	bad := map[string]func(*Config){
		"incoming without RAM file": func(c *Config) { c.Incoming = true },
		"incoming with shared RAM":  func(c *Config) { c.Incoming, c.RAMFile, c.RAMShared = true, "/t/ram", true },
		"incoming without QMP":      func(c *Config) { c.Incoming, c.RAMFile, c.QMPSocket = true, "/t/ram", "" },
		"RAM file with a comma":     func(c *Config) { c.RAMFile = "/t/r,am" },
		"RAM file with virtiofs": func(c *Config) {
			c.RAMFile, c.Shares = "/t/ram", []Share{{Tag: "pod", Path: "/p", Transport: Virtiofs, Socket: "/p.sock"}}
		},
	}
	for name, mutate := range bad {
		c := validConfig()
		c.QMPSocket = "/pod/qmp.sock"
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidConfig", name, err)
		}
	}
}
