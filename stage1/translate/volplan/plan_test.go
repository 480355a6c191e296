package volplan

import (
	"errors"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

func name(s string) types.ACName { return *types.MustACName(s) }

func TestResolveRules(t *testing.T) {
	yes, no := true, false
	mode, zero := "0700", 0
	vols := []types.Volume{
		{Name: name("data"), Kind: KindHost, Source: "/srv/data"},
		{Name: name("locked"), Kind: KindHost, Source: "/srv/locked", ReadOnly: &yes},
		{Name: name("open"), Kind: KindHost, Source: "/srv/open", ReadOnly: &no},
		{Name: name("tmp"), Kind: KindEmpty, Mode: &mode, UID: &zero, GID: &zero},
	}
	apps := []App{{
		Name: "a",
		MountPoints: []types.MountPoint{
			{Name: name("data"), Path: "/data", ReadOnly: true}, // by name, read-only
			{Name: name("locked"), Path: "/locked"},             // the volume's readOnly wins
			{Name: name("open"), Path: "/open", ReadOnly: true}, // readOnly=false wins too
			{Name: name("cache"), Path: "/cache"},               // no volume: implicit empty
			{Name: name("tmp"), Path: "/covered"},               // covered by a mount below
		},
		Mounts: []schema.Mount{{Volume: name("tmp"), Path: "/covered"}, {Volume: name("data"), Path: "/extra"}},
	}, {
		Name:   "b",
		Mounts: []schema.Mount{{Volume: name("data"), Path: "/d"}},
	}}
	p, err := Resolve(vols, apps)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{"a", "tmp", "/covered", false},
		{"a", "data", "/extra", true}, // the mount point named data is read-only
		{"a", "data", "/data", true},
		{"a", "locked", "/locked", true},
		{"a", "open", "/open", false},
		{"a", "a-cache", "/cache", false},
		{"b", "data", "/d", false},
	}
	if len(p.Mounts) != len(want) {
		t.Fatalf("mounts %+v, want %+v", p.Mounts, want)
	}
	for i := range want {
		if p.Mounts[i] != want[i] {
			t.Errorf("mount %d: %+v, want %+v", i, p.Mounts[i], want[i])
		}
	}
	// Volumes in first-use order, each once, shared by every app using
	// them.
	var got []string
	for _, v := range p.Volumes {
		got = append(got, v.Name)
	}
	if w := "tmp data locked open a-cache"; strings.Join(got, " ") != w {
		t.Errorf("volumes %q, want %q", strings.Join(got, " "), w)
	}
	d, _ := p.Volume("data")
	if !d.Recursive || d.ReadOnly || d.GuestPath() != "/pod/host/data" {
		t.Errorf("data: %+v (guest path %s)", d, d.GuestPath())
	}
	c, _ := p.Volume("a-cache")
	if c.Mode != 0o755 || c.GuestPath() != "/pod/volumes/a-cache" {
		t.Errorf("implicit volume: %+v", c)
	}
}

func TestResolveRefuses(t *testing.T) {
	bad := "9x"
	for _, tc := range []struct {
		what string
		vols []types.Volume
		app  App
		want string
	}{
		{"unknown volume", nil, App{Name: "a", Mounts: []schema.Mount{{Volume: name("x"), Path: "/x"}}}, "does not define"},
		{"bad kind", []types.Volume{{Name: name("x"), Kind: "nfs"}}, App{Name: "a", Mounts: []schema.Mount{{Volume: name("x"), Path: "/x"}}}, "kind \"nfs\""},
		{"relative source", []types.Volume{{Name: name("x"), Kind: KindHost, Source: "srv"}}, App{Name: "a", Mounts: []schema.Mount{{Volume: name("x"), Path: "/x"}}}, "not an absolute path"},
		{"comma", []types.Volume{{Name: name("x"), Kind: KindHost, Source: "/a,b"}}, App{Name: "a", Mounts: []schema.Mount{{Volume: name("x"), Path: "/x"}}}, "comma"},
		{"bad mode", []types.Volume{{Name: name("x"), Kind: KindEmpty, Mode: &bad}}, App{Name: "a", Mounts: []schema.Mount{{Volume: name("x"), Path: "/x"}}}, "octal"},
		{"twice", []types.Volume{{Name: name("x"), Kind: KindEmpty}, {Name: name("x"), Kind: KindEmpty}}, App{Name: "a"}, "twice"},
	} {
		_, err := Resolve(tc.vols, []App{tc.app})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid mentioning %q", tc.what, err, tc.want)
		}
	}
}

// Mount points are created inside the rootfs whatever symlinks and ".."
// they go through.
