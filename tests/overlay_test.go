package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// rkt's default mode mounts the stage1 and each app as overlays (the whole
// suite runs that way). A pod with a host volume and an empty volume shares
// several host devices with the guest: QEMU prints no warning about them,
// and inode numbers stay unique per file across the app's image layer, its
// upper layer and the volumes, while a hard link keeps its file's number.
func TestOverlayModeInodes(t *testing.T) {
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "host-file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	app := sh("app", `echo x > /upper-file && ln /upper-file /upper-link && echo y > /scratch/empty-file &&
stat -c 'ino %i %n' /bin/busybox /etc/passwd /upper-file /upper-link /data/host-file /scratch/empty-file`)
	app.MountPoints = []types.MountPoint{{Name: acName(t, "data"), Path: "/data"}, {Name: acName(t, "scratch"), Path: "/scratch"}}
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{Volumes: []types.Volume{
		{Name: acName(t, "data"), Kind: "host", Source: vol},
		emptyVolume(t, "scratch"),
	}}, harness.BuildACI(t, app))
	r := p.Run(t, harness.RunOpts{Net: "none"})
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	ino := map[string]string{}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "ino" {
			ino[f[2]] = f[1]
		}
	}
	if len(ino) != 6 {
		t.Fatalf("inode numbers %v, want 6 files\nstdout:\n%s", ino, r.Stdout)
	}
	if ino["/upper-file"] != ino["/upper-link"] {
		t.Errorf("a hard link has inode %s, its file %s", ino["/upper-link"], ino["/upper-file"])
	}
	seen := map[string]string{}
	for name, n := range ino {
		if name == "/upper-link" {
			continue
		}
		if other, dup := seen[n]; dup {
			t.Errorf("%s and %s share inode number %s", name, other, n)
		}
		seen[n] = name
	}
	logs, _ := filepath.Glob(filepath.Join(p.Dir, "vm", "*.log"))
	for _, out := range append([]string{r.Stderr}, readAll(t, logs)...) {
		if strings.Contains(out, "9p:") || strings.Contains(out, "Multiple devices") {
			t.Errorf("QEMU warned:\n%s", out)
		}
	}
	assertNoLeaks(t, p)
}

// rkt run --no-overlay copies the stage1 and the apps into the pod instead:
// that layout still works.
func TestNoOverlayVariant(t *testing.T) {
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{NoOverlay: true}, harness.BuildACI(t, sh("app", "echo copied > /written; cat /written; exit 7")))
	r := p.Run(t, harness.RunOpts{Net: "none"})
	if r.ExitCode != 7 || !containsLine(r.Stdout, "copied") {
		t.Errorf("exit %d, stdout %q\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "stage1/rootfs/opt/stage2/app/rootfs/written")); err != nil {
		t.Errorf("the app's write is not in its copied rootfs: %v", err)
	}
	if mounts := p.StrayMounts(); len(mounts) != 0 {
		t.Errorf("mounts left: %v", mounts)
	}
	assertNoLeaks(t, p)
}

// readAll reads each file, for assertions on their text.
func readAll(t *testing.T, paths []string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// emptyVolume is `--volume NAME,kind=empty` with rkt's defaults.
func emptyVolume(t *testing.T, name string) types.Volume {
	t.Helper()
	v, err := types.VolumeFromString(name + ",kind=empty")
	if err != nil {
		t.Fatal(err)
	}
	return *v
}
