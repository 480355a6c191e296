package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// Every kind of file works in an app's rootfs, on an empty volume and on a
// host volume, as in rkt's container flavor: a FIFO, a unix socket, a hard
// link with its file's inode number, an xattr, bytes written through a
// shared mapping and kept after close without msync, a file grown with
// fallocate(2) and then written through a mapping; across two apps
// sharing the empty volume, an flock and an fcntl lock held by one are seen
// by the other, and so are the bytes one writes through a shared mapping
// (tests/fileprobe does the checks). Device nodes are made in the app's
// /dev (root has CAP_MKNOD) but never on a share: a node there would be a
// real device node on the host (docs/security.md), so that is refused with
// EPERM. A file unlinked while open opens again through /proc/self/fd (our
// QEMU's 9p serves it from the open descriptor it still holds).
// buildFileProbe builds tests/fileprobe (static, to copy into an app).
func buildFileProbe(t *testing.T) string {
	t.Helper()
	probe := filepath.Join(t.TempDir(), "fileprobe")
	build := exec.Command("go", "build", "-trimpath", "-o", probe, "./fileprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fileprobe: %v\n%s", err, out)
	}
	return probe
}

func TestEveryFileType(t *testing.T) {
	probe := buildFileProbe(t)
	mounts := []types.MountPoint{{Name: acName(t, "data"), Path: "/data"}, {Name: acName(t, "scratch"), Path: "/scratch"}}
	holder := sh("holder", probe+" local / /scratch /data /dev && "+probe+" holder /scratch")
	holder.HostBinaries, holder.MountPoints = []string{probe}, mounts
	peer := sh("peer", probe+" peer /scratch")
	peer.HostBinaries, peer.MountPoints = []string{probe}, mounts

	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{Volumes: []types.Volume{
		{Name: acName(t, "data"), Kind: "host", Source: t.TempDir()},
		emptyVolume(t, "scratch"),
	}}, harness.BuildACI(t, holder), harness.BuildACI(t, peer))
	r := p.Run(t, harness.RunOpts{Net: "none"})
	if r.ExitCode != 0 {
		t.Errorf("exit %d", r.ExitCode)
	}
	var want []string
	for _, dir := range []string{"/", "/scratch", "/data"} {
		for _, c := range []string{"fifo", "socket", "hardlink", "xattr", "mmapwrite", "fallocate", "unlinked"} {
			want = append(want, c+" "+dir+" ok")
		}
		want = append(want, "mknod "+dir+" FAIL: operation not permitted")
	}
	want = append(want, "mknod /dev ok", "fifo /dev ok", "socket /dev ok", "holder /scratch ok", "peer /scratch ok")
	for _, w := range want {
		if !containsLine(r.Stdout, w) {
			t.Errorf("no %q", w)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.Stdout, strings.TrimSpace(r.Stderr))
	}
	assertNoLeaks(t, p)
}
