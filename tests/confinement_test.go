package tests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/memcg"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/jailplan"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// startProbed starts a pod of app and waits until the app made the file
// probe in its rootfs; if it never does, the test ends (the app is let go
// by the file release). It returns the pod, its run, the app's rootfs
// on the host and QEMU's PID.
func startProbed(t *testing.T, app harness.AppSpec, probe, release string) (*harness.Pod, *harness.Running, string, int) {
	t.Helper()
	_, p, run := startPod(t, app)
	rootfs := filepath.Join(p.Dir, "stage1/rootfs/opt/stage2", app.Name, "rootfs")
	if !waitProbe(run, filepath.Join(rootfs, probe)) {
		os.WriteFile(filepath.Join(rootfs, release), nil, 0o644)
		r := run.Wait()
		t.Fatalf("the app never got going\nstdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
	pid, ok := qemuPid(p)
	if !ok {
		t.Fatal("no QEMU")
	}
	return p, run, rootfs, pid
}

// qemuPid is the pod's QEMU, from the PID file run writes (the jailed
// QEMU's command line names no host path but its marker).
func qemuPid(p *harness.Pod) (int, bool) {
	b, err := os.ReadFile(filepath.Join(p.Dir, contract.QEMUPidFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0, false
	}
	return pid, true
}

// procStatus is /proc/<pid>/status as fields (tabs between values kept).
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// waitProbe waits until the app made the file probe in its rootfs; false
// if it never did or run gave up.
func waitProbe(run *harness.Running, probe string) bool {
	return waitUntil(readyTimeout, 100*time.Millisecond, func() bool {
		if _, stderr := run.Output(); strings.Contains(stderr, "stage1 run:") {
			return true
		}
		_, err := os.Stat(probe)
		return err == nil
	}) && func() bool { _, err := os.Stat(probe); return err == nil }()
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// checkNamespaces: pid lives in mount, PID and network namespaces of its
// own.
func checkNamespaces(t *testing.T, what string, pid int) {
	t.Helper()
	for _, ns := range []string{"mnt", "pid", "net"} {
		ours, _ := os.Readlink("/proc/self/ns/" + ns)
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil || its == ours {
			t.Errorf("%s shares the host's %s namespace (%s, %v)", what, ns, its, err)
		}
	}
}

// The VMM runs with least privilege (docs/security.md): while a pod runs,
// its QEMU has QEMU's own user, exactly the four capabilities 9p needs in
// every set, no_new_privs, a seccomp filter, and a root holding only its
// jail. The app meanwhile does, over 9p, what needs those capabilities
// (chown, a set-group-ID bit for a group QEMU's user is not in), and what
// they do not allow (a device node on the host). (Any special file fails
// on 9p anyway: QEMU 7.2 refuses to open one, even to set its mode, since
// the fix of CVE-2023-2861.)
func TestVMMConfined(t *testing.T) {
	app := sh("app", report+`
mkdir /probe && chown 1234:1234 /probe && p chown ok
touch /probe/f && chown 1000:1000 /probe/f && chmod 2755 /probe/f && p setgid ok
mknod /probe/null c 1 3 2>/dev/null && p mknod allowed || p mknod refused
touch /probed
i=0; while [ ! -e /release ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done
`)
	p, run, rootfs, pid := startProbed(t, app, "probed", "release")
	st := procStatus(t, pid)
	caps := jailplan.Mask(jailplan.QEMUCaps)
	id := fmt.Sprintf("%d\t%d\t%d\t%d", jailplan.QEMUUID, jailplan.QEMUUID, jailplan.QEMUUID, jailplan.QEMUUID)
	gid := fmt.Sprintf("%d\t%d\t%d\t%d", jailplan.QEMUGID, jailplan.QEMUGID, jailplan.QEMUGID, jailplan.QEMUGID)
	for k, want := range map[string]string{
		"Uid": id, "Gid": gid, "Groups": "",
		"CapInh": caps, "CapPrm": caps, "CapEff": caps, "CapBnd": caps, "CapAmb": caps,
		"NoNewPrivs": "1", "Seccomp": "2",
	} {
		if st[k] != want {
			t.Errorf("QEMU's %s: %q, want %q", k, st[k], want)
		}
	}
	checkNamespaces(t, "QEMU", pid)

	// Its root is the jail, and the jail holds only what QEMU needs.
	root := fmt.Sprintf("/proc/%d/root", pid)
	if got := entries(t, root); !slices.Equal(got, []string{"boot", "dev", "proc", "qemu", "shares", "vm"}) {
		t.Errorf("QEMU's root holds %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/shadow")); !os.IsNotExist(err) {
		t.Errorf("QEMU sees /etc/shadow: %v", err)
	}
	devs := []string{"null", "urandom"}
	if accel, _ := chooseAccel(t); accel == qemu.KVM {
		devs = []string{"kvm", "null", "urandom"}
	}
	if got := entries(t, filepath.Join(root, "dev")); !slices.Equal(got, devs) {
		t.Errorf("QEMU's /dev holds %q, want %q", got, devs)
	}
	for _, e := range entries(t, filepath.Join(root, "vm")) {
		if e != "console.log" && e != "ram" && !strings.HasPrefix(e, "port") && !strings.HasPrefix(e, "tty") {
			t.Errorf("QEMU's /vm holds %s", e)
		}
	}
	// A clone's template RAM file (when the pod started from one):
	// read-only, so no pod can change what other pods start from.
	if f, err := os.OpenFile(filepath.Join(root, "vm", "ram"), os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Error("the template's RAM file is writable in QEMU's jail")
	} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.EROFS) {
		t.Errorf("opening the template's RAM file for writing: %v, want EROFS", err)
	}
	// The pod share (contract.PodTag), QEMU's only 9p export.
	if got := entries(t, filepath.Join(root, "shares")); !slices.Equal(got, []string{"0"}) {
		t.Errorf("QEMU's /shares holds %q, want the pod share", got)
	}
	if err := os.WriteFile(filepath.Join(root, "planted"), nil, 0o644); err == nil {
		t.Error("the jail's root is writable")
	}
	// Its command line names the pod only in its marker.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	for _, a := range strings.Split(string(cmdline), "\x00") {
		if strings.Contains(a, p.Dir) && a != "guest="+p.Dir {
			t.Errorf("QEMU's argument %q names a host path", a)
		}
	}
	if got := entries(t, filepath.Join(p.Dir, contract.JailDir)); len(got) != 0 {
		t.Errorf("the jail shows on the host: %q", got)
	}

	os.WriteFile(filepath.Join(rootfs, "release"), nil, 0o644)
	r := run.Wait()
	assertNoLeaks(t, p)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	checkResults(t, results(r.Stdout), map[string]string{
		"app:chown": "ok", "app:setgid": "ok", "app:mknod": "refused",
	})
	for name, want := range map[string]string{"probe": "1234 1234", "probe/f": "1000 1000 setgid"} {
		fi, err := os.Stat(filepath.Join(rootfs, name))
		if err != nil {
			t.Error(err)
			continue
		}
		s := fi.Sys().(*syscall.Stat_t)
		got := fmt.Sprintf("%d %d", s.Uid, s.Gid)
		if fi.Mode()&os.ModeSetgid != 0 {
			got += " setgid"
		}
		if got != want {
			t.Errorf("%s on the host: %s, want %s", name, got, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(p.Dir, contract.JailDir)); !os.IsNotExist(err) {
		t.Errorf("the jail directory outlived the pod: %v", err)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
}

// virtiofsd (STAGE1_KVM_SHARED_FS=virtiofs) runs with no_new_privs and a
// bounding set of what it needs, and sandboxes itself: its serving process
// has its own namespaces, a seccomp filter and only file-system
// capabilities, never CAP_MKNOD or CAP_SETFCAP.
func TestVirtiofsdConfined(t *testing.T) {
	t.Setenv(settings.SharedFSEnv, "virtiofs")
	app := sh("app", `touch /probed; i=0; while [ ! -e /release ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done`)
	_, p, run := startPod(t, app)
	rootfs := filepath.Join(p.Dir, "stage1/rootfs/opt/stage2/app/rootfs")
	defer func() {
		os.WriteFile(filepath.Join(rootfs, "release"), nil, 0o644)
		if r := run.Wait(); r.ExitCode != 0 || t.Failed() {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
		}
		assertNoLeaks(t, p)
	}()
	if !waitProbe(run, filepath.Join(rootfs, "probed")) {
		t.Fatal("the app never got going")
	}
	// virtiofsd forks: a parent that waits, and the sandboxed server.
	procs := harness.ProcessesMentioning("source=" + filepath.Join(p.Dir, contract.ShareDir))
	if len(procs) == 0 {
		t.Fatal("no virtiofsd serves the pod share")
	}
	bounding := jailplan.Mask(jailplan.VirtioFSDCaps)
	fsCaps := jailplan.Mask([]jailplan.Cap{jailplan.CapChown, jailplan.CapDacOverride, jailplan.CapFowner,
		jailplan.CapFsetid, jailplan.CapSetgid, jailplan.CapSetuid})
	servers := 0
	for _, pid := range procs {
		st := procStatus(t, pid)
		if st["NoNewPrivs"] != "1" {
			t.Errorf("virtiofsd %d: NoNewPrivs %q", pid, st["NoNewPrivs"])
		}
		if bnd, _ := strconv.ParseUint(st["CapBnd"], 16, 64); st["CapBnd"] == "" || bnd&^mustHex(t, bounding) != 0 {
			t.Errorf("virtiofsd %d: CapBnd %s, beyond %s", pid, st["CapBnd"], bounding)
		}
		if st["Seccomp"] != "2" {
			continue
		}
		servers++
		if st["CapEff"] != fsCaps {
			t.Errorf("virtiofsd %d serves with CapEff %s, want %s", pid, st["CapEff"], fsCaps)
		}
		checkNamespaces(t, "virtiofsd", pid)
	}
	if servers == 0 {
		t.Errorf("no virtiofsd process has a seccomp filter (%v)", procs)
	}
}

func mustHex(t *testing.T, s string) uint64 {
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// qemuArg is the value after flag on QEMU's command line ("" if none).
func qemuArg(t *testing.T, pid int, flag string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args[:len(args)-1] {
		if a == flag {
			return args[i+1]
		}
	}
	return ""
}

// A pod's VM is bounded in host memory by design: its QEMU runs in a
// memory cgroup of the pod's own, limited to guest RAM, the TCG cache and
// memcg.OverheadMiB. A guest that takes all of its RAM (an app allocating
// until the guest's kernel kills it) stays within the bound: the VM lives
// on, the app's end is reported as usual (systemd stops a unit one of
// whose processes the kernel killed: OOMPolicy=stop), and the cgroup is
// gone after.
func TestVMMemoryBounded(t *testing.T) {
	app := sh("hog", `
touch /started
i=0; while [ ! -e /go ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done
tail /dev/zero
sleep 600
`)
	p, run, rootfs, pid := startProbed(t, app, "started", "go")
	cg := qemuMemcg(t, pid)
	if filepath.Base(cg.Dir) != memcg.Name(p.UUID) {
		t.Fatalf("QEMU's memory cgroup is %s, not the pod's own", cg.Dir)
	}
	mem, _ := strconv.Atoi(qemuArg(t, pid, "-m"))
	tb := 0
	if accel := qemuArg(t, pid, "-accel"); strings.HasPrefix(accel, "tcg") {
		_, v, _ := strings.Cut(accel, "tb-size=")
		tb, _ = strconv.Atoi(v)
	}
	limit, err := cg.Limit()
	if want := memcg.LimitBytes(mem, tb); err != nil || mem == 0 || limit != want {
		t.Errorf("QEMU's memory limit: %d (%v), want %d for %d MiB of RAM and a %d MiB cache", limit, err, want, mem, tb)
	}
	// The cgroup's peak, read until run removes the cgroup.
	var peak int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if v, err := cg.Peak(); err == nil {
				peak = v
			}
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	os.WriteFile(filepath.Join(rootfs, "go"), nil, 0o644)
	r := run.Wait()
	close(done)
	<-sampled
	assertNoLeaks(t, p)
	status, recorded := p.AppStatus("hog")
	if !recorded || r.ExitCode == 0 || r.ExitCode != status {
		t.Errorf("run exited %d; the app's recorded status %d (%v): want the app's own, non-zero", r.ExitCode, status, recorded)
	}
	for _, bad := range []string{hypervisor.ErrOutOfMemory.Error(), "stopped before its apps finished"} {
		if strings.Contains(r.Stderr, bad) {
			t.Errorf("the VM did not survive its guest taking all its RAM: %q\nstderr:\n%s", bad, r.Stderr)
		}
	}
	// The guest's RAM was all in use: QEMU held most of it, in the pod's
	// cgroup, within the bound.
	if peak < int64(mem)<<20*3/4 || peak > limit {
		t.Errorf("the cgroup's peak: %d bytes; RAM %d MiB, limit %d", peak, mem, limit)
	}
}

// qemuMemcg is the memory cgroup pid is in.
func qemuMemcg(t *testing.T, pid int) memcg.Group {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	g, ok := memcg.Locate(string(b), memcg.Root)
	if !ok {
		t.Skip("this host has no memory cgroup")
	}
	return g
}
