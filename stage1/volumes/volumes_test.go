package volumes

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
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
	// Volumes in first-use order; host volumes get tags in that order,
	// shared by every app using them.
	var got []string
	for _, v := range p.Volumes {
		got = append(got, v.Name+":"+v.Tag)
	}
	if w := "tmp: data:vol-0 locked:vol-1 open:vol-2 a-cache:"; strings.Join(got, " ") != w {
		t.Errorf("volumes %q, want %q", strings.Join(got, " "), w)
	}
	d, _ := p.Volume("data")
	if !d.Recursive || d.ReadOnly || d.GuestPath() != "/run/stage1/volumes/data" {
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
func TestMakeTargetConfined(t *testing.T) {
	outside := t.TempDir()
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"etc", "real"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "file"), nil, 0o644)
	os.Symlink("../../../../../../../../"+outside, filepath.Join(root, "climb"))
	os.Symlink(outside, filepath.Join(root, "abs"))
	os.Symlink("real", filepath.Join(root, "rel"))
	for _, tc := range []struct{ in, want string }{
		{"/data", "/data"},
		{"/../../../../x", "/x"},
		{"/etc/../y/z", "/y/z"},
		{"/climb/v", outside + "/v"},
		{"/abs/w", outside + "/w"},
		{"/rel/q", "/real/q"},
	} {
		got, err := MakeTarget(root, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("MakeTarget(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if st, err := os.Stat(filepath.Join(root, tc.want)); err != nil || !st.IsDir() {
			t.Errorf("%s: not a directory in the rootfs: %v", tc.in, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("created outside the rootfs: %v", entries)
	}
	for _, in := range []string{"/", "/..", "/file", "/file/x"} {
		if got, err := MakeTarget(root, in); err == nil {
			t.Errorf("MakeTarget(%q) = %q, want an error", in, got)
		}
	}
}

func TestPrepare(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	s1 := t.TempDir()
	src := t.TempDir()
	root := t.TempDir()
	sym := filepath.Join(t.TempDir(), "sym")
	os.Symlink(src, sym)
	mode, uid, gid := "1770", 123, 456
	p, err := Resolve([]types.Volume{
		{Name: name("h"), Kind: KindHost, Source: src},
		{Name: name("e"), Kind: KindEmpty, Mode: &mode, UID: &uid, GID: &gid},
	}, []App{{Name: "a", MountPoints: []types.MountPoint{{Name: name("h"), Path: "/h"}, {Name: name("e"), Path: "/e", ReadOnly: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Prepare(p, s1, map[string]string{"a": root})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Shares) != 1 || out.Shares[0].HostPath != src || out.Shares[0].Tag != "vol-0" {
		t.Errorf("shares %+v", out.Shares)
	}
	want := []Bind{{"/run/stage1/volumes/h", "/h", false}, {"/pod/volumes/e", "/e", true}}
	if b := out.Binds["a"]; len(b) != 2 || b[0] != want[0] || b[1] != want[1] {
		t.Errorf("binds %+v, want %+v", b, want)
	}
	st, err := os.Stat(filepath.Join(s1, EmptyDir, "e"))
	if err != nil || st.Mode() != os.ModeDir|os.ModeSticky|0o770 {
		t.Errorf("empty volume: %v %v", st.Mode(), err)
	}
	var list []Share
	b, _ := os.ReadFile(filepath.Join(s1, ListFile))
	if err := json.Unmarshal(b, &list); err != nil || len(list) != 1 || list[0].Name != "h" || list[0].HostPath != "" {
		t.Errorf("guest list %s: %v", b, err)
	}

	p.Volumes[0].Source = sym
	if _, err := Prepare(p, s1, map[string]string{"a": root}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink source: %v", err)
	}
}
