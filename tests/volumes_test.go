package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// mountOpts prints the mount options of a path as the app sees them.
const mountOpts = `mo() { p "mnt$1" "$(grep " $1 " /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1)"; }
`

// One pod, two apps, every volume kind: a read-write host volume (a file
// the app writes is on the host once the pod exited), a read-only one, an
// empty volume with a mode and owner shared by both apps (one app's write
// is seen by the other), mounted by mount point names and by the pod's
// mounts list; a mount point reached through a symlink that climbs out of
// the rootfs lands inside the rootfs.
func TestVolumes(t *testing.T) {
	rw, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(rw, "from-host"), []byte("host data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	escape := "stage1-kvm-escape-" + filepath.Base(rw)
	yes := true
	mode, uid, gid := "0770", 1000, 2000
	dmode, zero := "0755", 0
	vols := []types.Volume{
		{Name: acName(t, "data"), Kind: "host", Source: rw},
		{Name: acName(t, "ro"), Kind: "host", Source: ro, ReadOnly: &yes},
		{Name: acName(t, "scratch"), Kind: "empty", Mode: &mode, UID: &uid, GID: &gid},
	}

	writer := sh("writer", report+mountOpts+`mo /mnt/data; mo /mnt/ro; mo /mnt/scratch; mo /shared; mo /tmp/`+escape+`/esc
p fromhost "$(cat /mnt/data/from-host)"
echo written > /mnt/data/from-app && p write ok
touch /mnt/ro/x 2>/dev/null && p rowrite allowed || p rowrite refused
p scratch "$(stat -c '%a %u %g' /mnt/scratch)"
echo shared > /shared/note
`)
	writer.MountPoints = []types.MountPoint{
		{Name: acName(t, "data"), Path: "/mnt/data"},
		{Name: acName(t, "ro"), Path: "/mnt/ro"},
		{Name: acName(t, "scratch"), Path: "/mnt/scratch"},
		{Name: acName(t, "esc"), Path: "/link/esc"},
	}
	reader := sh("reader", report+mountOpts+`mo /shared; mo /mnt/data
touch /mnt/data/y 2>/dev/null && p rowrite allowed || p rowrite refused
i=0; while [ ! -e /shared/note ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
p note "$(cat /shared/note)"
i=0; while [ ! -e /mnt/data/host-ack ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
p ack "$(cat /mnt/data/host-ack)"
`)

	// A symlink in the image that climbs out of the writer's rootfs.
	writer.Symlinks = map[string]string{"/link": strings.Repeat("../", 12) + "tmp/" + escape}

	// The same host volume, read-only in this app only.
	reader.MountPoints = []types.MountPoint{{Name: acName(t, "data"), Path: "/mnt/data", ReadOnly: true}}

	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{
		Volumes: append(vols, types.Volume{Name: acName(t, "esc"), Kind: "empty", Mode: &dmode, UID: &zero, GID: &zero}),
		Mounts:  []schema.Mount{{Volume: acName(t, "scratch"), Path: "/shared"}},
	}, harness.BuildACI(t, writer), harness.BuildACI(t, reader))
	// While the pod runs: the writer's file is on the host (the writer
	// exits right after writing), and a file the host then adds is seen
	// by the reader, which waits for it before it exits.
	run := p.Start(t, harness.RunOpts{Net: "none"})
	if !waitUntil(60*time.Second, 50*time.Millisecond, func() bool {
		b, err := os.ReadFile(filepath.Join(rw, "from-app"))
		return err == nil && string(b) == "written\n"
	}) {
		t.Error("the writer's file never appeared on the host while the pod ran")
	}
	if err := os.WriteFile(filepath.Join(rw, "host-ack"), []byte("ack\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run.Wait()
	assertNoLeaks(t, p)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	got := results(r.Stdout)
	checkResults(t, got, map[string]string{
		"writer:mnt/mnt/data":               "rw",
		"writer:mnt/mnt/ro":                 "ro",
		"writer:mnt/mnt/scratch":            "rw",
		"writer:mnt/shared":                 "rw",
		"writer:mnt/tmp/" + escape + "/esc": "rw",
		"writer:fromhost":                   "host data",
		"writer:write":                      "ok",
		"writer:rowrite":                    "refused",
		"writer:scratch":                    "770 1000 2000",
		"reader:mnt/shared":                 "rw",
		"reader:mnt/mnt/data":               "ro",
		"reader:rowrite":                    "refused",
		"reader:note":                       "shared",
		"reader:ack":                        "ack",
	})
	if b, err := os.ReadFile(filepath.Join(rw, "from-app")); err != nil || string(b) != "written\n" {
		t.Errorf("the app's write on the host: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(ro); len(entries) != 0 {
		t.Errorf("read-only volume changed on the host: %v", entries)
	}
	if _, err := os.Lstat(filepath.Join("/tmp", escape)); err == nil {
		t.Errorf("the symlinked mount point reached the host's /tmp/%s", escape)
		os.RemoveAll(filepath.Join("/tmp", escape))
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
}

// Volumes the stage1 cannot deliver stop the pod before the VM starts,
// naming the problem.
func TestVolumesRefused(t *testing.T) {
	dir := t.TempDir()
	sym := filepath.Join(dir, "sym")
	if err := os.Symlink("/etc", sym); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		vol  types.Volume
		want string
	}{
		{"missing source", types.Volume{Kind: "host", Source: filepath.Join(dir, "nope")}, "no such file"},
		{"symlink source", types.Volume{Kind: "host", Source: sym}, "is a symlink"},
		{"unknown volume", types.Volume{Kind: "host", Source: dir}, "does not define"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.vol.Name = acName(t, "v")
			opts := harness.PodOpts{Volumes: []types.Volume{tc.vol}}
			if tc.want == "does not define" {
				opts.Mounts = []schema.Mount{{Volume: acName(t, "other"), Path: "/x"}}
			} else {
				opts.Mounts = []schema.Mount{{Volume: acName(t, "v"), Path: "/x"}}
			}
			s := harness.NewStage0(t)
			p := s.Prepare(t, opts, harness.BuildACI(t, sh("app", "true")))
			r := p.Run(t, harness.RunOpts{Net: "none"})
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("exit %d, stderr %q: want a failure with %q", r.ExitCode, r.Stderr, tc.want)
			}
			if strings.Contains(r.Stderr, "guest console") {
				t.Errorf("the VM started: %s", r.Stderr)
			}
		})
	}
}

// A read-only rootfs keeps its volumes writable.
func TestVolumesOnReadOnlyRootFS(t *testing.T) {
	app := sh("app", `touch /x 2>/dev/null && echo root=writable || echo root=read-only
echo hi > /vol/f && echo vol=writable || echo vol=read-only`)
	app.MountPoints = []types.MountPoint{{Name: acName(t, "vol"), Path: "/vol"}}
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{ReadOnlyRootFS: true}, harness.BuildACI(t, app))
	r := p.Run(t, harness.RunOpts{Net: "none"})
	assertNoLeaks(t, p)
	if r.ExitCode != 0 || !containsLine(r.Stdout, "root=read-only") || !containsLine(r.Stdout, "vol=writable") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
}

// With STAGE1_KVM_SHARED_FS=virtiofs, the app's rootfs (the pod directory)
// and a writable host volume reach the guest over virtiofs, a read-only
// volume stays on 9p (QEMU enforces read-only there; virtiofsd cannot), and
// what 9p cannot do works: opening a file that was unlinked while open.
// The journal, in the pod directory, still persists.
func TestVirtiofsShares(t *testing.T) {
	t.Setenv(settings.SharedFSEnv, "virtiofs")
	rw, ro := t.TempDir(), t.TempDir()
	yes := true
	app := sh("app", report+`fs() { p "fs$1" "$(awk -v m="$1" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") t = $(i+1) } END { print t }' /proc/self/mountinfo)"; }
fs /; fs /mnt/data; fs /mnt/ro
for d in /tmp /mnt/data; do
	exec 3>$d/gone; echo x >&3; rm $d/gone
	truncate -s 0 /proc/self/fd/3 && p "unlinked$d" ok || p "unlinked$d" failed
	exec 3>&-
done
echo written > /mnt/data/from-app && p write ok
touch /mnt/ro/x 2>/dev/null && p rowrite allowed || p rowrite refused
echo virtiofs-journal-marker
`)
	app.MountPoints = []types.MountPoint{
		{Name: acName(t, "data"), Path: "/mnt/data"},
		{Name: acName(t, "ro"), Path: "/mnt/ro"},
	}
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{Volumes: []types.Volume{
		{Name: acName(t, "data"), Kind: "host", Source: rw},
		{Name: acName(t, "ro"), Kind: "host", Source: ro, ReadOnly: &yes},
	}}, harness.BuildACI(t, app))
	r := p.Run(t, harness.RunOpts{Net: "none"})
	assertNoLeaks(t, p)
	if procs := harness.ProcessesMentioning(filepath.Join(p.Dir, "vm/share")); len(procs) > 0 {
		t.Errorf("a virtiofsd for the pod share outlived the pod: %v", procs)
	}
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	checkResults(t, results(r.Stdout), map[string]string{
		"app:fs/":         "virtiofs",
		"app:fs/mnt/data": "virtiofs",
		// The whole pod share is one virtiofs export; the read-only
		// volume is a read-only bind in it, refused by the host kernel.
		"app:fs/mnt/ro":         "virtiofs",
		"app:unlinked/tmp":      "ok",
		"app:unlinked/mnt/data": "ok",
		"app:write":             "ok",
		"app:rowrite":           "refused",
	})
	if b, err := os.ReadFile(filepath.Join(rw, "from-app")); err != nil || string(b) != "written\n" {
		t.Errorf("the app's write on the host: %q, %v", b, err)
	}
	out, err := exec.Command("journalctl", "-D", filepath.Join(p.Dir, "stage1/rootfs/var/log/journal"), "-o", "cat", "--no-pager").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "virtiofs-journal-marker") {
		t.Errorf("journal over virtiofs: %v\n%s", err, out)
	}

	// run killed while the pod runs: its virtiofsds go with it, and gc
	// removes their sockets.
	p = s.Prepare(t, harness.PodOpts{Volumes: []types.Volume{{Name: acName(t, "data"), Kind: "host", Source: rw}}},
		harness.BuildACI(t, harness.AppSpec{Name: "app", Exec: []string{"/bin/sleep", "300"}, MountPoints: app.MountPoints[:1]}))
	run := p.Start(t, harness.RunOpts{Net: "none"})
	p.WaitReady(t, readyTimeout)
	// (virtiofsd runs as two processes: its sandboxed worker and a
	// parent waiting for it.)
	share := filepath.Join(p.Dir, "vm/share")
	if procs := harness.ProcessesMentioning(share); len(procs) == 0 {
		t.Error("no virtiofsd serves the pod share")
	}
	killRunThenGC(t, s, p, run)
	for _, pid := range harness.ProcessesMentioning(share) {
		harness.MustBeGone(t, "virtiofsd", pid)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
}

// recursive=false: what is mounted below the source stays out of the
// app's view (recursive=true of the same source shows it), writes still
// reach the source, and the bind that hides the submounts is released by
// run at the end, or by gc when run was killed.
func TestVolumeNotRecursive(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "top"), []byte("top\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(sub, "inner"), []byte("inner\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	no, yes := false, true
	app := sh("app", report+`p nonrec-top "$(cat /mnt/nonrec/top)"
[ -e /mnt/nonrec/sub/inner ] && p nonrec-sub visible || p nonrec-sub hidden
p rec-sub "$(cat /mnt/rec/sub/inner)"
echo from-app > /mnt/nonrec/new && p write ok
[ -n "$STAY" ] && sleep 300
true
`)
	app.MountPoints = []types.MountPoint{
		{Name: acName(t, "nonrec"), Path: "/mnt/nonrec"},
		{Name: acName(t, "rec"), Path: "/mnt/rec"},
	}
	vols := []types.Volume{
		{Name: acName(t, "nonrec"), Kind: "host", Source: src, Recursive: &no},
		{Name: acName(t, "rec"), Kind: "host", Source: src, Recursive: &yes},
	}
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{Volumes: vols}, harness.BuildACI(t, app))
	r := p.Run(t, harness.RunOpts{Net: "none"})
	assertNoLeaks(t, p)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	checkResults(t, results(r.Stdout), map[string]string{
		"app:nonrec-top": "top",
		"app:nonrec-sub": "hidden",
		"app:rec-sub":    "inner",
		"app:write":      "ok",
	})
	if b, err := os.ReadFile(filepath.Join(src, "new")); err != nil || string(b) != "from-app\n" {
		t.Errorf("the app's write on the host: %q, %v", b, err)
	}

	// run killed while the pod runs: gc releases the bind.
	app.Env = []types.EnvironmentVariable{{Name: "STAY", Value: "1"}}
	p = s.Prepare(t, harness.PodOpts{Volumes: vols}, harness.BuildACI(t, app))
	run := p.Start(t, harness.RunOpts{Net: "none"})
	p.WaitReady(t, readyTimeout)
	killRunThenGC(t, s, p, run)
}
