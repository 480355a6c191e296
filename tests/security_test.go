package tests

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// The guest is hostile: root in the guest with every capability an app can
// be given, reaching the guest's own root through /proc/1/root, writes
// everywhere it can reach on every share. None of it may land among the
// stage1's own files (which rkt runs on the host as root: gc, stop, QEMU,
// the CNI plugins), nor in the pod's configuration for the guest.
func TestGuestCannotReachStage1Files(t *testing.T) {
	vol := t.TempDir()
	attacker := sh("attacker", report+`
root=/proc/1/root
[ -d $root/pod ] || { p reach no; exit 0; }
p reach yes
p podtop "$(ls $root/pod | tr '\n' ' ')"
for f in gc stop init enter bzImage guest.img qemu net-plugins manifest; do
	[ -e $root/pod/$f ] && p exposed "$f"
done
# Every directory of every shared file system the guest has, written to
# and planted with symlinks named like the host's own files.
grep -E ' - (9p|virtiofs) ' /proc/1/mountinfo | cut -d' ' -f5 | while read m; do
	find $root$m -maxdepth 5 -type d 2>/dev/null | while read d; do
		for f in gc stop init qemu.pid agent.sock stage1-kvm-probe; do
			echo '#!/bin/sh' > $d/$f 2>/dev/null && p wrote "${d#$root}/$f"
		done
		ln -s /etc/shadow $d/planted-link 2>/dev/null
	done
done 2>/dev/null
true
`)
	attacker.Isolators = types.Isolators{
		iso(t, "os/linux/capabilities-retain-set", `{"set":["CAP_SYS_PTRACE","CAP_DAC_OVERRIDE","CAP_DAC_READ_SEARCH","CAP_FOWNER","CAP_CHOWN","CAP_SYS_ADMIN"]}`),
	}
	attacker.MountPoints = []types.MountPoint{{Name: acName(t, "data"), Path: "/data"}, {Name: acName(t, "scratch"), Path: "/scratch"}}
	empty := "0755"
	zero := 0

	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{Volumes: []types.Volume{
		{Name: acName(t, "data"), Kind: "host", Source: vol},
		{Name: acName(t, "scratch"), Kind: "empty", Mode: &empty, UID: &zero, GID: &zero},
	}}, harness.BuildACI(t, attacker))
	image, err := p.Stage1Image()
	if err != nil {
		t.Fatal(err)
	}
	before := stage1Files(t, image)
	if len(before) == 0 {
		t.Fatal("no stage1 files to compare")
	}

	r := p.Run(t, harness.RunOpts{Net: "none"})
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	got := results(r.Stdout)
	if got["attacker:reach"] != "yes" {
		t.Fatalf("the app never reached the guest's root; the test proves nothing\nstdout:\n%s", r.Stdout)
	}
	if e, ok := got["attacker:exposed"]; ok {
		t.Errorf("the guest sees the stage1's %s", e)
	}
	if top := got["attacker:podtop"]; strings.TrimSpace(top) != "config host journal opt volumes" {
		t.Errorf("the guest's /pod holds %q, want only config, host, journal, opt and volumes", top)
	}
	// Where the guest may write: its own rootfs, the journal, the volumes.
	allowed := []string{"/pod/opt/stage2/attacker/rootfs/", "/pod/journal/", "/var/log/journal/", "/pod/volumes/", "/pod/host/data/"}
	wrote := 0
	for _, line := range strings.Split(r.Stdout, "\n") {
		w, ok := strings.CutPrefix(line, "attacker:wrote=")
		if !ok {
			continue
		}
		wrote++
		if !slices.ContainsFunc(allowed, func(a string) bool { return strings.HasPrefix(w, a) }) {
			t.Errorf("the guest wrote %s", w)
		}
	}
	if wrote == 0 {
		t.Error("the guest could write nowhere; the test proves nothing")
	}
	// The probes did land where the guest may write: its own rootfs.
	if _, err := os.Stat(filepath.Join(p.Dir, "stage1/rootfs/opt/stage2/attacker/rootfs/stage1-kvm-probe")); err != nil {
		t.Errorf("the app could not even write its own rootfs: %v", err)
	}
	// The pod's view of its stage1 once the guest is gone (in overlay
	// mode, still mounted until gc).
	after := stage1Files(t, filepath.Join(p.Dir, "stage1", "rootfs"))
	if code, stderr := s.GC(t, p, harness.GCOpts{Keep: true}); code != 0 {
		t.Fatalf("gc exited %d: %s", code, stderr)
	}
	for name, sum := range before {
		if after[name] != sum {
			t.Errorf("the stage1's %s changed while the pod ran", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("the stage1's rootfs gained %s while the pod ran", name)
		}
	}
	if st, ok := p.AppStatus("attacker"); !ok || st != 0 {
		t.Errorf("status %d %v", st, ok)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
}

// stage1Files hashes every file of the stage1 rootfs that the guest must
// never change: all of it but the apps' rootfs, the journal, the empty
// volumes and what the run entry point writes (statuses, readiness).
func stage1Files(t *testing.T, root string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	skip := []string{"opt/stage2/", "var/log/journal/", "volumes/", "rkt/status/", "rkt/supervisor-status"}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, s := range skip {
			if strings.HasPrefix(rel+"/", s) || rel == strings.TrimSuffix(s, "/") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if d.IsDir() {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(path)
			sums[rel] = "link:" + target
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		sums[rel] = fmt.Sprintf("%x %v", h.Sum(nil), d.Type())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) < 5 {
		t.Fatalf("only %d stage1 files found under %s", len(sums), root)
	}
	return sums
}

// rkt's privileges: a non-root app has no effective or ambient capability
// unless its manifest grants some (a retain-set); it cannot read or change
// a root-only file on a host volume. A root app keeps the default set.
func TestAppPrivilegesLikeRkt(t *testing.T) {
	vol := t.TempDir()
	secret := filepath.Join(vol, "secret")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	capsProbe := report + `for k in CapEff CapAmb; do p $k "$(grep "^$k:" /proc/self/status | cut -f2)"; done
cat /data/secret >/dev/null 2>&1 && p read allowed || p read refused
echo changed 2>/dev/null > /data/secret && p write allowed || p write refused
`
	mount := []types.MountPoint{{Name: acName(t, "data"), Path: "/data"}}
	rootApp := sh("rootapp", capsProbe)
	user := sh("user", capsProbe)
	user.User, user.Group = "1000", "1000"
	granted := sh("granted", capsProbe)
	granted.User, granted.Group = "1000", "1000"
	granted.Isolators = types.Isolators{iso(t, "os/linux/capabilities-retain-set", `{"set":["CAP_DAC_READ_SEARCH","CAP_KILL"]}`)}
	for _, a := range []*harness.AppSpec{&rootApp, &user, &granted} {
		a.MountPoints = mount
	}
	// Writes by the root app would spoil the others' checks: it only reads.
	rootApp.Exec = []string{"/bin/sh", "-c", strings.Replace(capsProbe, "echo changed", "false && echo changed", 1)}

	s := harness.NewStage0(t)
	var acis []string
	for _, a := range []harness.AppSpec{rootApp, user, granted} {
		acis = append(acis, harness.BuildACI(t, a))
	}
	p := s.Prepare(t, harness.PodOpts{Volumes: []types.Volume{{Name: acName(t, "data"), Kind: "host", Source: vol}}}, acis...)
	r := p.Run(t, harness.RunOpts{Net: "none"})
	assertNoLeaks(t, p)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	checkResults(t, results(r.Stdout), map[string]string{
		"rootapp:CapEff": capMask(defaultCaps...),
		"rootapp:CapAmb": capMask(),
		"rootapp:read":   "allowed",
		"user:CapEff":    capMask(),
		"user:CapAmb":    capMask(),
		"user:read":      "refused",
		"user:write":     "refused",
		"granted:CapEff": capMaskN(2, 5), // CAP_DAC_READ_SEARCH, CAP_KILL
		"granted:CapAmb": capMaskN(2, 5),
		"granted:read":   "allowed",
		"granted:write":  "refused",
	})
	if b, _ := os.ReadFile(secret); string(b) != "root only\n" {
		t.Errorf("the root-only file on the host volume changed: %q", b)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
}

// capMaskN is a capability set of the given capability numbers.
func capMaskN(bits ...uint) string {
	var m uint64
	for _, b := range bits {
		m |= 1 << b
	}
	return fmt.Sprintf("%016x", m)
}

// A hostile guest (root with ptrace and the default capabilities, reaching
// the guest's devices through /proc/1/root) floods the events port with
// junk, exits of apps that do not exist and an over-long line (a guest may
// of course lie about its own apps' exit codes: those are the guest's to
// report), then freezes the guest agent (SIGSTOP to the I/O forwarder,
// whose process serves it), so its port stays open without a word. The
// host stays bounded: run's memory stays
// small, unknown apps get no status file, enter gives up within its bound,
// and run still exits with the app's own code.
func TestHostileGuestIsBounded(t *testing.T) {
	hostile := sh("hostile", report+`
r=/proc/1/root
ports=$r/dev/virtio-ports
[ -e $ports/org.stage1-kvm.events ] || { p reach no; exit 0; }
p reach yes
# Our own programs hold the port for a moment to send their events; an
# attacker simply tries again until it has the port.
i=0
until exec 4>$ports/org.stage1-kvm.events; do
	i=$((i+1)); [ $i -lt 200 ] || { p open failed; exit 0; }
	sleep 0.05
done 2>/dev/null
{
	i=0
	while [ $i -lt 3000 ]; do echo "exited ghost$i 7"; echo "junk $i"; i=$((i+1)); done
	echo "exited ../../etc 0"
	head -c 4000000 /dev/zero | tr '\0' x; echo
} >&4 && p flood done
exec 4>&-
# The agent's port stays open and nothing answers on it.
agent=
for d in $r/proc/[0-9]*; do
	if tr '\0' ' ' < $d/cmdline 2>/dev/null | grep -q '^/usr/lib/stage1/stage1-guest io '; then
		agent=${d##*/}
	fi
done
[ -n "$agent" ] && kill -STOP $agent && p agent frozen && touch /silenced
i=0; while [ ! -e /release ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done
# Thawed, the forwarder passes on this app's output and exit.
[ -n "$agent" ] && kill -CONT $agent
exit 3
`)
	hostile.Isolators = types.Isolators{
		iso(t, "os/linux/capabilities-retain-set", `{"set":["CAP_SYS_PTRACE","CAP_DAC_OVERRIDE","CAP_KILL"]}`),
	}
	_, p := preparePod(t, hostile)
	run := p.Start(t, harness.RunOpts{Net: "none"})
	rootfs := filepath.Join(p.Dir, "stage1/rootfs/opt/stage2/hostile/rootfs")

	// run's peak memory while the guest floods it.
	peak := make(chan int, 1)
	stopSampling := make(chan struct{})
	go func() {
		hwm := 0
		for {
			if v := vmHWMKiB(run.Pid); v > hwm {
				hwm = v
			}
			select {
			case <-stopSampling:
				peak <- hwm
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	silenced := waitUntil(120*time.Second, 100*time.Millisecond, func() bool {
		_, err := os.Stat(filepath.Join(rootfs, "silenced"))
		return err == nil
	})
	if silenced {
		start := time.Now()
		e := p.Enter(t, harness.EnterOpts{Timeout: 90 * time.Second}, "/bin/true")
		if e.ExitCode == 0 {
			t.Errorf("enter succeeded through a silenced agent: %+v", e)
		}
		if d := time.Since(start); d > 60*time.Second {
			t.Errorf("enter took %v against a silent agent", d)
		}
	} else {
		t.Error("the hostile app never silenced the agent")
	}
	os.WriteFile(filepath.Join(rootfs, "release"), nil, 0o644)
	r := run.Wait()
	close(stopSampling)
	hwm := <-peak
	assertNoLeaks(t, p)
	got := results(r.Stdout)
	if got["hostile:reach"] != "yes" || got["hostile:flood"] != "done" || got["hostile:agent"] != "frozen" {
		t.Fatalf("the hostile app did not get to do its worst (%v); the test proves nothing\nstdout:\n%s\nstderr:\n%s", got, r.Stdout, r.Stderr)
	}
	if r.ExitCode != 3 {
		t.Errorf("run exited %d, want the app's own 3", r.ExitCode)
	}
	if hwm == 0 || hwm > 150*1024 {
		t.Errorf("run's peak memory under the flood: %d KiB", hwm)
	}
	entries, _ := os.ReadDir(filepath.Join(p.Dir, "stage1/rootfs/rkt/status"))
	for _, e := range entries {
		if e.Name() != "hostile" {
			t.Errorf("a status file for %q, which is no app of the pod", e.Name())
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
}

// vmHWMKiB is a process's peak resident memory, 0 if it cannot be read.
func vmHWMKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var n int
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &n)
			return n
		}
	}
	return 0
}
