package volumes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/volplan"
)

func name(s string) types.ACName { return *types.MustACName(s) }

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
	p, err := volplan.Resolve([]types.Volume{
		{Name: name("h"), Kind: volplan.KindHost, Source: src},
		{Name: name("e"), Kind: volplan.KindEmpty, Mode: &mode, UID: &uid, GID: &gid},
	}, []volplan.App{{Name: "a", MountPoints: []types.MountPoint{{Name: name("h"), Path: "/h"}, {Name: name("e"), Path: "/e", ReadOnly: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Prepare(p, s1, map[string]string{"a": root})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Shares) != 1 || out.Shares[0].HostPath != src || out.Shares[0].Name != "h" || !out.Shares[0].Recursive {
		t.Errorf("shares %+v", out.Shares)
	}
	want := []volplan.Bind{{Source: "/pod/host/h", Target: "/h"}, {Source: "/pod/volumes/e", Target: "/e", ReadOnly: true}}
	if b := out.Binds["a"]; len(b) != 2 || b[0] != want[0] || b[1] != want[1] {
		t.Errorf("binds %+v, want %+v", b, want)
	}
	st, err := os.Stat(filepath.Join(s1, contract.EmptyVolumesDir, "e"))
	if err != nil || st.Mode() != os.ModeDir|os.ModeSticky|0o770 {
		t.Errorf("empty volume: %v %v", st.Mode(), err)
	}
	p.Volumes[0].Source = sym
	if _, err := Prepare(p, s1, map[string]string{"a": root}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink source: %v", err)
	}
}
