package memcg

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLocate(t *testing.T) {
	root := t.TempDir()
	v1 := "12:pids:/a\n8:memory:/stage1-test-1\n1:name=systemd:/x\n0::/x\n"
	if g, ok := Locate(v1, root); !ok || g.V2 || g.Dir != filepath.Join(root, "memory/stage1-test-1") {
		t.Errorf("v1: %+v %v", g, ok)
	}
	if g, ok := Locate("0::/user.slice/run\n", root); !ok || !g.V2 || g.Dir != filepath.Join(root, "user.slice/run") {
		t.Errorf("v2: %+v %v", g, ok)
	}
	os.Mkdir(filepath.Join(root, "unified"), 0o755)
	if g, ok := Locate("3:cpu:/a\n0::/b\n", root); !ok || !g.V2 || g.Dir != filepath.Join(root, "unified/b") {
		t.Errorf("hybrid: %+v %v", g, ok)
	}
	if g, ok := Locate("garbage\n3:cpu:relative\n", root); ok {
		t.Errorf("nothing named: %+v", g)
	}
}

func TestFiles(t *testing.T) {
	v1, v2 := Group{Dir: "/c/m"}, Group{Dir: "/c/u", V2: true}
	for _, c := range []struct{ got, want string }{
		{v1.OOMFile(), "/c/m/memory.oom_control"}, {v2.OOMFile(), "/c/u/memory.events"},
		{v1.limitFile(), "memory.limit_in_bytes"}, {v2.limitFile(), "memory.max"},
		{v1.Procs(), "/c/m/cgroup.procs"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

// The bound is guest RAM, the TCG cache and the overhead, in bytes.
func TestLimitBytes(t *testing.T) {
	if got, want := LimitBytes(160, 64), int64(160+64+OverheadMiB)<<20; got != want {
		t.Errorf("TCG: %d, want %d", got, want)
	}
	if got, want := LimitBytes(4096, 0), int64(4096+OverheadMiB)<<20; got != want {
		t.Errorf("KVM: %d, want %d", got, want)
	}
}

// Create makes the directory and writes the limit (a plain directory
// stands in for the cgroup file system); Remove takes it away, and a
// second Remove is no error.
func TestCreateRemove(t *testing.T) {
	parent := Group{Dir: t.TempDir()}
	if _, err := Create(parent, "x", 0); err == nil {
		t.Error("a zero limit was accepted")
	}
	g, err := Create(parent, Name("u"), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if g.Dir != filepath.Join(parent.Dir, "stage1-kvm-u") {
		t.Errorf("dir %s", g.Dir)
	}
	if n, err := g.Limit(); err != nil || n != 1<<30 {
		t.Errorf("limit %d, %v", n, err)
	}
	if _, err := Create(parent, Name("u"), 1<<30); !errors.Is(err, ErrUnavailable) {
		t.Errorf("made twice: %v", err)
	}
	os.Remove(filepath.Join(g.Dir, g.limitFile())) // a cgroup's files go with it
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(); err != nil {
		t.Errorf("second remove: %v", err)
	}
}

// On v2 a parent that cannot hand the memory controller down (no
// cgroup.subtree_control here) gives ErrUnavailable and nothing is made.
func TestCreateV2Refused(t *testing.T) {
	parent := Group{Dir: t.TempDir(), V2: true}
	if _, err := Create(parent, "x", 1<<30); !errors.Is(err, ErrUnavailable) {
		t.Errorf("%v, want ErrUnavailable", err)
	}
	if _, err := os.Stat(filepath.Join(parent.Dir, "x")); !os.IsNotExist(err) {
		t.Errorf("made anyway: %v", err)
	}
	os.WriteFile(filepath.Join(parent.Dir, "cgroup.subtree_control"), []byte("cpu memory\n"), 0o644)
	if _, err := Create(parent, "x", 1<<30); err != nil {
		t.Errorf("memory handed down already: %v", err)
	}
}

// A pod's limit leaves run RunReserveMiB of its own cgroup's limit, and
// is left alone under a parent with room (or no limit).
func TestCapToParent(t *testing.T) {
	const mib = int64(1) << 20
	reserve := int64(RunReserveMiB) * mib
	for _, c := range []struct {
		limit, parent, want int64
		ok                  bool
	}{
		{256 * mib, 0, 256 * mib, true},
		{256 * mib, 1 << 62, 256 * mib, true},
		{256 * mib, 256*mib + reserve, 256 * mib, true},
		{256 * mib, 48 * mib, 48*mib - reserve, true},
		{256 * mib, reserve, 0, false},
		{256 * mib, reserve - 1, 0, false},
	} {
		got, ok := CapToParent(c.limit, c.parent)
		if got != c.want || ok != c.ok {
			t.Errorf("CapToParent(%d, %d) = %d, %v; want %d, %v", c.limit, c.parent, got, ok, c.want, c.ok)
		}
	}
}
