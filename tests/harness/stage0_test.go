package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// The fake stage1's entry points are host shell scripts that write down how
// stage0 called them, so these tests need neither a VM nor the real build.

const fakeRun = `#!/bin/sh
# Fake run entry point: report argv, cwd, environment and the lock fd.
lockfd="$RKT_LOCK_FD"
{
	echo "cwd=$(pwd -P)"
	for a in "$0" "$@"; do echo "arg=$a"; done
	echo "lockfd=$lockfd"
	echo "selinux=${RKT_SELINUX_CONTEXT-unset}/${RKT_SELINUX_MOUNT_CONTEXT-unset}"
	echo "extra=${FAKE_EXTRA-unset}"
	echo "lockpath=$(readlink /proc/$$/fd/$lockfd)"
	if [ -d "/proc/$$/fd/$lockfd" ]; then echo "lockisdir=yes"; fi
	echo "lockflags=$(sed -n 's/^flags:[[:space:]]*//p' /proc/$$/fdinfo/$lockfd)"
} > "$FAKE_REPORT.tmp"
mv "$FAKE_REPORT.tmp" "$FAKE_REPORT"
echo $$ > pid
if [ -n "$FAKE_APP" ]; then echo "$FAKE_STATUS" > "stage1/rootfs/rkt/status/$FAKE_APP"; fi
if [ -n "$FAKE_STRAY" ]; then sleep 1000 & fi
if [ -n "$FAKE_HANG" ]; then sleep 1000 & sleep 1000; fi
if [ -n "$FAKE_WAIT" ]; then echo ready; read line; fi
exit "${FAKE_EXIT:-42}"
`

const fakeGC = `#!/bin/sh
# Fake gc entry point: report how it was called and whether stage0 holds the
# pod lock meanwhile.
out=$(readlink /proc/$$/fd/1)
{
	echo "cwd=$(pwd -P)"
	for a in "$0" "$@"; do echo "arg=$a"; done
	echo "stdout=$out"
	if flock -n . true; then echo "lock=free"; else echo "lock=held"; fi
	echo "lockfd=${RKT_LOCK_FD-unset}"
} > "$FAKE_REPORT"
echo "gc says hi" >&2
exit 3
`

const fakeStop = `#!/bin/sh
for a in "$0" "$@"; do echo "arg=$a"; done
kill -TERM "$(cat pid)"
`

const fakeEnter = `#!/bin/sh
echo "cwd=$(pwd -P)"
for a in "$0" "$@"; do echo "arg=$a"; done
echo "lockfd=${RKT_LOCK_FD-unset}"
exit 7
`

type fakeStage1Opts struct {
	version  string // interface-version annotation; "" for none
	noStatus bool   // leave rkt/status/ out of the image
}

// fakeStage1 writes a stage1 ACI whose entry points are the scripts above.
func fakeStage1(t testing.TB, o fakeStage1Opts) string {
	t.Helper()
	var ann types.Annotations
	for _, ep := range [][2]string{{"run", "/init"}, {"gc", "/gc"}, {"stop", "/stop"}, {"enter", "/enter"}} {
		ann.Set(*types.MustACIdentifier(annStage1 + ep[0]), ep[1])
	}
	if o.version != "" {
		ann.Set(*types.MustACIdentifier(annInterfaceVersion), o.version)
	}
	im := schema.ImageManifest{
		ACKind:    schema.ImageManifestKind,
		ACVersion: schema.AppContainerVersion,
		Name:      *types.MustACIdentifier("example.com/fake-stage1"),
		Labels: types.Labels{
			{Name: "version", Value: "0.0.1"}, {Name: "os", Value: "linux"}, {Name: "arch", Value: "amd64"},
		},
		Annotations: ann,
	}
	mb, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := newACIWriter(&buf)
	w.File("manifest", 0o644, mb)
	w.Dir("rootfs", 0o755)
	w.File("rootfs/init", 0o755, []byte(fakeRun))
	w.File("rootfs/gc", 0o755, []byte(fakeGC))
	w.File("rootfs/stop", 0o755, []byte(fakeStop))
	w.File("rootfs/enter", 0o755, []byte(fakeEnter))
	if !o.noStatus {
		w.Dir("rootfs/rkt/status", 0o755)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "fake-stage1.aci")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// report parses a fake entry point's key=value report; "arg" accumulates.
type report map[string][]string

func readReport(t testing.TB, p string) report {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("the fake entry point wrote no report: %v", err)
	}
	r := report{}
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		k, v, _ := strings.Cut(l, "=")
		r[k] = append(r[k], v)
	}
	return r
}

func (r report) get(k string) string {
	if len(r[k]) == 0 {
		return "<none>"
	}
	return r[k][0]
}

func helloApp(t testing.TB, name string) string {
	return BuildACI(t, AppSpec{Name: name, Exec: []string{"/bin/echo", "hello"}})
}

func TestPrepareLayout(t *testing.T) {
	t.Parallel()
	s := NewStage0With(t, fakeStage1(t, fakeStage1Opts{version: "6"}))
	memIso, err := types.NewResourceMemoryIsolator("1G", "1G")
	if err != nil {
		t.Fatal(err)
	}
	one := BuildACI(t, AppSpec{Name: "one", Exec: []string{"/bin/true"}, Isolators: types.Isolators{memIso.AsIsolator()}})
	two := helloApp(t, "two")
	p := s.Prepare(t, PodOpts{MemoryLimit: "128M", NoOverlay: true}, one, two)

	if want := filepath.Join(s.Dir, "pods", "prepared", p.UUID); p.Dir != want {
		t.Errorf("pod dir %s, want %s", p.Dir, want)
	}
	if !reflect.DeepEqual(p.Apps, []string{"one", "two"}) {
		t.Errorf("apps %v, want [one two] (named after the image name's last component)", p.Apps)
	}
	// Polled: a child forked by a parallel test holds a copy of every
	// open descriptor, Prepare's lock included, until it execs.
	for deadline := time.Now().Add(2 * time.Second); p.LockHeld(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Error("a prepared pod must not be locked")
			break
		}
	}
	for _, f := range []string{"pod", "pod.lck", "pod-created", "stage1TreeStoreID", "stage1/manifest",
		"stage1/rootfs/init", "appsinfo/one/manifest", "appsinfo/two/manifest",
		"stage1/rootfs/opt/stage2/one/manifest", "stage1/rootfs/opt/stage2/two/rootfs/bin/busybox",
		"stage1/rootfs/opt/stage2/two/rootfs/bin/sh", "stage1/rootfs/opt/stage2/two/rootfs/etc/passwd"} {
		if _, err := os.Lstat(filepath.Join(p.Dir, f)); err != nil {
			t.Errorf("pod layout: %v", err)
		}
	}
	if fi, err := os.Stat(filepath.Join(p.Dir, "stage1/rootfs/rkt/status")); err != nil || !fi.IsDir() {
		t.Errorf("stage1/rootfs/rkt/status must be a directory: %v", err)
	}
	fi, err := os.Stat(filepath.Join(p.Dir, "stage1/rootfs/opt/stage2/two/rootfs/tmp"))
	if err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("app /tmp should be 1777: %v %v", fi.Mode(), err)
	}

	// Manifests are copied byte for byte from the images.
	info, err := inspectACI(two)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"appsinfo/two/manifest", "stage1/rootfs/opt/stage2/two/manifest"} {
		if b, _ := os.ReadFile(filepath.Join(p.Dir, f)); !bytes.Equal(b, info.ManifestJSON) {
			t.Errorf("%s differs from the image's manifest", f)
		}
	}
	treeID, _ := os.ReadFile(filepath.Join(p.Dir, "stage1TreeStoreID"))
	if !strings.HasPrefix(string(treeID), "deps-sha512-") {
		t.Errorf("stage1TreeStoreID %q", treeID)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "cas", "tree", string(treeID), "rootfs", "enter")); err != nil {
		t.Errorf("stage1 not in the tree store: %v", err)
	}

	raw, err := os.ReadFile(filepath.Join(p.Dir, "pod"))
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"volumes", "isolators", "ports"} {
		if v, ok := generic[k]; !ok || string(v) != "null" {
			t.Errorf("pod manifest %q = %s, want null as rkt writes it", k, v)
		}
	}
	pm := p.Manifest(t)
	if pm.ACVersion.String() != "1.30.0" {
		t.Errorf("acVersion %s, want rkt's version 1.30.0", pm.ACVersion)
	}
	if v, ok := pm.Annotations.Get(annPodMutable); !ok || v != "false" {
		t.Errorf("mutable annotation %q %v", v, ok)
	}
	ra := pm.Apps.Get(*types.MustACName("one"))
	if ra == nil || ra.App == nil {
		t.Fatalf("app one missing from %s", raw)
	}
	if ra.Image.ID.String() != info.ID.String() && !strings.HasPrefix(ra.Image.ID.String(), "sha512-") {
		t.Errorf("image id %s", ra.Image.ID)
	}
	if len(ra.Image.ID.Val) != 64 {
		t.Errorf("image id %s: rkt's store keys keep 64 hex digits", ra.Image.ID)
	}
	if ra.Image.Name == nil || ra.Image.Name.String() != TestImagePrefix+"one" {
		t.Errorf("image name %v", ra.Image.Name)
	}
	var mems []string
	for _, iso := range ra.App.Isolators {
		if iso.Name == types.ResourceMemoryName {
			mems = append(mems, iso.Value().(*types.ResourceMemory).Limit().String())
		}
	}
	if !reflect.DeepEqual(mems, []string{"1G", "128M"}) {
		t.Errorf("memory isolators %v: want the image's then --memory's", mems)
	}
	if two := pm.Apps.Get(*types.MustACName("two")); two == nil || len(two.App.Isolators) != 1 {
		t.Errorf("app two should get exactly the --memory isolator: %+v", two)
	}
}

// fdsOn lists this process's descriptors that refer to path.
func fdsOn(path string) []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == path {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestRunContract(t *testing.T) {
	t.Parallel()
	s := NewStage0With(t, fakeStage1(t, fakeStage1Opts{version: "6"}))
	p := s.Prepare(t, PodOpts{}, helloApp(t, "hello"))
	reportPath := filepath.Join(t.TempDir(), "report")

	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdoutR.Close()
	r := p.Start(t, RunOpts{
		Debug: true, Interactive: true, Hostname: "h1", MDSToken: "tok",
		DNS: []string{"10.1.1.1"}, DNSSearch: []string{"example.com"}, HostsEntries: []string{"10.0.0.9=foo,10.0.0.9=bar"},
		DisablePaths: true, IPC: "private", Extra: []string{"--private-users=0:65536"},
		Stdin: stdinR, Stdout: stdoutW,
		Env: []string{"FAKE_REPORT=" + reportPath, "FAKE_WAIT=1", "FAKE_EXTRA=x y", "FAKE_APP=hello", "FAKE_STATUS=13"},
	})
	stdinR.Close()
	stdoutW.Close()
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("fake run never got ready: %q %v", line, err)
	}

	// While the run process lives it holds the lock, alone.
	runDir := filepath.Join(s.Dir, "pods", "run", p.UUID)
	if p.Dir != runDir {
		t.Errorf("pod dir %s, want %s", p.Dir, runDir)
	}
	if !p.LockHeld() {
		t.Error("LockHeld false while the run entry point runs")
	}
	if fds := fdsOn(runDir); len(fds) > 0 {
		t.Errorf("stage0 kept descriptors %v on the pod dir; only the run process may hold the lock", fds)
	}
	rep := readReport(t, reportPath)
	want := []string{filepath.Join(runDir, "stage1/rootfs/init"),
		"--debug", "--net=default", "--interactive", "--private-users=0:65536", "--mds-token=tok",
		"--local-config=/etc/rkt", "--hostname=h1", "--dns-conf-mode=resolv=stage0,hosts=stage0",
		"--disable-paths", "--ipc=private", p.UUID}
	if !reflect.DeepEqual(rep["arg"], want) {
		t.Errorf("argv\n got %q\nwant %q", rep["arg"], want)
	}
	if rep.get("cwd") != runDir {
		t.Errorf("cwd %s, want the pod dir %s", rep.get("cwd"), runDir)
	}
	if rep.get("lockfd") != strconv.Itoa(defaultLockFD) {
		t.Errorf("RKT_LOCK_FD=%s", rep.get("lockfd"))
	}
	if rep.get("selinux") != "/" {
		t.Errorf("RKT_SELINUX_CONTEXT/RKT_SELINUX_MOUNT_CONTEXT should be set and empty: %s", rep.get("selinux"))
	}
	if rep.get("extra") != "x y" {
		t.Errorf("caller environment not passed: FAKE_EXTRA=%s", rep.get("extra"))
	}
	if rep.get("lockisdir") != "yes" || rep.get("lockpath") != runDir {
		t.Errorf("lock fd should be the pod directory: %s (%s)", rep.get("lockpath"), rep.get("lockisdir"))
	}
	flags, err := strconv.ParseUint(rep.get("lockflags"), 8, 64)
	if err != nil || flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_DIRECTORY == 0 {
		t.Errorf("lock fd flags %s: want O_RDONLY|O_DIRECTORY", rep.get("lockflags"))
	}
	if l, err := os.Readlink(filepath.Join(runDir, "stage1/rootfs/opt/stage2/hello/rootfs/etc/mtab")); err != nil || l != "../proc/self/mounts" {
		t.Errorf("app etc/mtab: %q %v", l, err)
	}
	resolv, _ := os.ReadFile(filepath.Join(runDir, "stage1/rootfs/etc/rkt-resolv.conf"))
	if string(resolv) != "# Generated by rkt run\n\nsearch example.com\nnameserver 10.1.1.1\n" {
		t.Errorf("rkt-resolv.conf:\n%s", resolv)
	}
	hosts, _ := os.ReadFile(filepath.Join(runDir, "stage1/rootfs/etc/rkt-hosts"))
	if !strings.HasSuffix(string(hosts), "# Added by rkt run --hosts-entry\n10.0.0.9 foo bar\n") {
		t.Errorf("rkt-hosts:\n%s", hosts)
	}
	if pid, err := p.PID(); err != nil || pid != r.Pid {
		t.Errorf("PID() = %d, %v; want the run process %d", pid, err, r.Pid)
	}

	stdinW.Write([]byte("go\n"))
	res := r.Wait()
	if res.ExitCode != 42 {
		t.Errorf("exit code %d, want the run entry point's 42", res.ExitCode)
	}
	if p.LockHeld() {
		t.Error("lock still held after the run process exited")
	}
	if code, ok := p.AppStatus("hello"); !ok || code != 13 {
		t.Errorf("AppStatus = %d, %v; want 13", code, ok)
	}
	if _, ok := p.AppStatus("nope"); ok {
		t.Error("AppStatus of a missing app")
	}
}

func TestRunFlagsByInterfaceVersion(t *testing.T) {
	t.Parallel()
	s := NewStage0With(t, fakeStage1(t, fakeStage1Opts{})) // no annotation: version 1
	p := s.Prepare(t, PodOpts{}, helloApp(t, "hello"))
	reportPath := filepath.Join(t.TempDir(), "report")
	res := p.Run(t, RunOpts{
		Net: "none", Hostname: "h1", HostsEntries: []string{"10.0.0.1=a"}, DisableSeccomp: true, IPC: "parent",
		RunPrepared: true, LockFD: 9,
		Env: []string{"FAKE_REPORT=" + reportPath, "FAKE_EXIT=0"},
	})
	if res.ExitCode != 0 {
		t.Errorf("exit code %d; stderr: %s", res.ExitCode, res.Stderr)
	}
	rep := readReport(t, reportPath)
	want := []string{filepath.Join(p.Dir, "stage1/rootfs/init"), "--net=none", p.UUID}
	if !reflect.DeepEqual(rep["arg"], want) {
		t.Errorf("argv\n got %q\nwant %q", rep["arg"], want)
	}
	if rep.get("lockfd") != "9" || rep.get("lockisdir") != "yes" {
		t.Errorf("lock fd %s (dir: %s), want 9", rep.get("lockfd"), rep.get("lockisdir"))
	}
}

func TestGC(t *testing.T) {
	t.Parallel()
	s := NewStage0With(t, fakeStage1(t, fakeStage1Opts{version: "5"}))
	p := s.Prepare(t, PodOpts{}, helloApp(t, "hello"))
	dir := t.TempDir()
	if res := p.Run(t, RunOpts{Env: []string{"FAKE_REPORT=" + filepath.Join(dir, "run")}}); res.ExitCode != 42 {
		t.Fatalf("run: %+v", res)
	}
	gcReport := filepath.Join(dir, "gc")
	code, stderr := s.GC(t, p, GCOpts{Debug: true, Env: []string{"FAKE_REPORT=" + gcReport}, Keep: true})
	if code != 3 || stderr != "gc says hi\n" {
		t.Errorf("gc returned %d, %q", code, stderr)
	}
	garbage := filepath.Join(s.Dir, "pods", "exited-garbage", p.UUID)
	if p.Dir != garbage {
		t.Errorf("pod dir %s, want %s", p.Dir, garbage)
	}
	rep := readReport(t, gcReport)
	want := []string{filepath.Join(garbage, "stage1/rootfs/gc"), "--debug", "--local-config", "/etc/rkt", p.UUID}
	if !reflect.DeepEqual(rep["arg"], want) {
		t.Errorf("argv\n got %q\nwant %q", rep["arg"], want)
	}
	if rep.get("cwd") != garbage || rep.get("stdout") != "/dev/null" {
		t.Errorf("cwd %s, stdout %s", rep.get("cwd"), rep.get("stdout"))
	}
	if rep.get("lock") != "held" || rep.get("lockfd") != "unset" {
		t.Errorf("stage0 must hold the pod lock during gc without passing it: lock=%s RKT_LOCK_FD=%s", rep.get("lock"), rep.get("lockfd"))
	}

	// Again, as rkt would after a failed gc; this time the pod goes away.
	if code, _ := s.GC(t, p, GCOpts{Env: []string{"FAKE_REPORT=" + gcReport}}); code != 3 {
		t.Errorf("second gc returned %d", code)
	}
	if rep := readReport(t, gcReport); len(rep["arg"]) != 4 {
		t.Errorf("gc without --debug: %q", rep["arg"])
	}
	if _, err := os.Stat(garbage); !os.IsNotExist(err) {
		t.Errorf("pod directory not deleted after gc: %v", err)
	}
}

func TestGCOldInterfaceHasNoLocalConfig(t *testing.T) {
	t.Parallel()
	s := NewStage0With(t, fakeStage1(t, fakeStage1Opts{version: "4"}))
	p := s.Prepare(t, PodOpts{}, helloApp(t, "hello"))
	dir := t.TempDir()
	p.Run(t, RunOpts{Env: []string{"FAKE_REPORT=" + filepath.Join(dir, "run")}})
	s.GC(t, p, GCOpts{Env: []string{"FAKE_REPORT=" + filepath.Join(dir, "gc")}})
	rep := readReport(t, filepath.Join(dir, "gc"))
	if want := []string{filepath.Join(s.Dir, "pods/exited-garbage", p.UUID, "stage1/rootfs/gc"), p.UUID}; !reflect.DeepEqual(rep["arg"], want) {
		t.Errorf("argv\n got %q\nwant %q", rep["arg"], want)
	}
}

func TestStopAndEnter(t *testing.T) {
	t.Parallel()
	s := NewStage0With(t, fakeStage1(t, fakeStage1Opts{version: "6"}))
	p := s.Prepare(t, PodOpts{}, helloApp(t, "hello"))
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdoutR.Close()
	r := p.Start(t, RunOpts{Stdin: stdinR, Stdout: stdoutW,
		Env: []string{"FAKE_REPORT=" + filepath.Join(t.TempDir(), "run"), "FAKE_WAIT=1"}})
	stdinR.Close()
	stdoutW.Close()
	if line, err := bufio.NewReader(stdoutR).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("fake run never got ready: %q %v", line, err)
	}

	e := p.Enter(t, EnterOpts{}, "/bin/sh", "-c", "true")
	if e.ExitCode != 7 {
		t.Errorf("enter exit code %d, want the entry point's 7", e.ExitCode)
	}
	treeID, _ := os.ReadFile(filepath.Join(p.Dir, "stage1TreeStoreID"))
	want := fmt.Sprintf("cwd=%s\narg=%s\narg=--pid=%d\narg=--appname=hello\narg=--\narg=/bin/sh\narg=-c\narg=true\nlockfd=unset\n",
		p.Dir, filepath.Join(s.Dir, "cas", "tree", string(treeID), "rootfs", "enter"), r.Pid)
	if e.Stdout != want {
		t.Errorf("enter saw\n%s\nwant\n%s", e.Stdout, want)
	}

	st := p.Stop(t, StopOpts{Force: true})
	if want := fmt.Sprintf("arg=%s\narg=--force\narg=%s\n", filepath.Join(p.Dir, "stage1/rootfs/stop"), p.UUID); st.Stdout != want {
		t.Errorf("stop saw\n%s\nwant\n%s", st.Stdout, want)
	}
	res := r.Wait()
	if res.Signal != syscall.SIGTERM || res.ExitCode != 128+int(syscall.SIGTERM) {
		t.Errorf("run result %+v, want killed by SIGTERM", res)
	}
	if p.LockHeld() {
		t.Error("lock outlived the run process")
	}
}

func TestStage1WithoutStatusDirFails(t *testing.T) {
	t.Parallel()
	s := NewStage0With(t, fakeStage1(t, fakeStage1Opts{version: "6", noStatus: true}))
	p := s.Prepare(t, PodOpts{}, helloApp(t, "hello"))
	rt := record(t, func(tb testing.TB) { p.Run(tb, RunOpts{}) })
	if !rt.fatal || !strings.Contains(rt.String(), "rkt/status") {
		t.Errorf("want a fatal error about rkt/status, got %q", rt.String())
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	s := NewStage0With(t, fakeStage1(t, fakeStage1Opts{version: "6"}))
	p := s.Prepare(t, PodOpts{}, helloApp(t, "hello"))
	var pid int
	rt := record(t, func(tb testing.TB) {
		r := p.Start(tb, RunOpts{Timeout: time.Second, Env: []string{"FAKE_REPORT=" + filepath.Join(t.TempDir(), "run"), "FAKE_HANG=1"}})
		pid = r.Pid
		r.Wait()
	})
	if !rt.fatal || !strings.Contains(rt.String(), "timed out") {
		t.Errorf("want a timeout failure, got %q", rt.String())
	}
	if m := groupMembers(pid); len(m) > 0 {
		t.Errorf("processes of the timed out run survive: %v", m)
	}
}

func TestStraysAreLeaks(t *testing.T) {
	t.Parallel()
	s := NewStage0With(t, fakeStage1(t, fakeStage1Opts{version: "6"}))
	p := s.Prepare(t, PodOpts{}, helloApp(t, "hello"))
	var res RunResult
	rt := record(t, func(tb testing.TB) {
		res = p.Run(tb, RunOpts{Env: []string{"FAKE_REPORT=" + filepath.Join(t.TempDir(), "run"), "FAKE_STRAY=1", "FAKE_EXIT=0"}})
	})
	if rt.fatal || !strings.Contains(rt.String(), "LEAK") || !strings.Contains(rt.String(), "sleep") {
		t.Errorf("want a LEAK error naming the stray sleep, got %q", rt.String())
	}
	if m := groupMembers(res.Pid); len(m) > 0 {
		t.Errorf("stray not killed: %v", m)
	}
}

// recordingTB captures failures of harness code under test instead of
// failing the real test; Fatal ends the goroutine as testing does.
type recordingTB struct {
	testing.TB
	mu    sync.Mutex
	msgs  []string
	fatal bool
}

func (r *recordingTB) add(fatal bool, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msg)
	r.fatal = r.fatal || fatal
}

func (r *recordingTB) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Error(a ...any)            { r.add(false, fmt.Sprint(a...)) }
func (r *recordingTB) Errorf(f string, a ...any) { r.add(false, fmt.Sprintf(f, a...)) }
func (r *recordingTB) Fail()                     { r.add(false, "Fail") }
func (r *recordingTB) Failed() bool              { return r.String() != "" }
func (r *recordingTB) Fatal(a ...any)            { r.add(true, fmt.Sprint(a...)); runtime.Goexit() }
func (r *recordingTB) Fatalf(f string, a ...any) { r.add(true, fmt.Sprintf(f, a...)); runtime.Goexit() }
func (r *recordingTB) FailNow()                  { r.add(true, "FailNow"); runtime.Goexit() }
func (r *recordingTB) Skip(a ...any)             { r.add(true, "skip: "+fmt.Sprint(a...)); runtime.Goexit() }
func (r *recordingTB) Skipf(f string, a ...any) {
	r.add(true, "skip: "+fmt.Sprintf(f, a...))
	runtime.Goexit()
}
func (r *recordingTB) SkipNow() { r.Skip() }

// record runs fn on its own goroutine with a recordingTB.
func record(t *testing.T, fn func(testing.TB)) *recordingTB {
	rt := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(rt)
	}()
	<-done
	return rt
}

// rkt's default overlay mode: prepare leaves the stage1 and the apps in the
// tree store; run mounts them as overlays (stage1/rootfs, then each app's
// rootfs, image manifest copied beside it); they stay until gc, which
// detaches them, and are not counted as the stage1's stray mounts.
func TestOverlayLayout(t *testing.T) {
	t.Parallel()
	s := NewStage0With(t, fakeStage1(t, fakeStage1Opts{version: "6"}))
	p := s.Prepare(t, PodOpts{}, helloApp(t, "hello"))
	for _, f := range []string{"stage1TreeStoreID", "stage1/manifest", "appsinfo/hello/manifest", "appsinfo/hello/treeStoreID"} {
		if _, err := os.Lstat(filepath.Join(p.Dir, f)); err != nil {
			t.Errorf("prepared pod: %v", err)
		}
	}
	if _, err := os.Lstat(filepath.Join(p.Dir, "stage1/rootfs/init")); err == nil {
		t.Error("the stage1 is copied into a prepared pod in overlay mode")
	}
	r := p.Start(t, RunOpts{Env: []string{"FAKE_REPORT=" + filepath.Join(t.TempDir(), "report"), "FAKE_EXIT=0"}}).Wait()
	if r.ExitCode != 0 {
		t.Fatalf("fake run exited %d: %s", r.ExitCode, r.Stderr)
	}
	for _, f := range []string{"stage1/rootfs/init", "stage1/rootfs/opt/stage2/hello/manifest", "stage1/rootfs/opt/stage2/hello/rootfs/bin/sh"} {
		if _, err := os.Lstat(filepath.Join(p.Dir, f)); err != nil {
			t.Errorf("running pod: %v", err)
		}
	}
	mounts := mountsUnder(p.Dir)
	if len(mounts) != 2 || len(p.StrayMounts()) != 0 {
		t.Errorf("mounts %v (stray %v), want the stage1's and the app's overlays", mounts, p.StrayMounts())
	}
	// Writes go to the pod's upper layer, not to the tree store.
	if err := os.WriteFile(filepath.Join(p.Dir, "stage1/rootfs/opt/stage2/hello/rootfs/written"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(p.Dir, "overlay/*/upper/hello/written"))
	if len(matches) != 1 {
		t.Errorf("the app's write is not in its upper layer: %v", matches)
	}
	dir := p.Dir
	if code, stderr := s.GC(t, p, GCOpts{Env: []string{"FAKE_REPORT=" + filepath.Join(t.TempDir(), "gc")}}); code != 3 {
		t.Fatalf("gc exited %d: %s", code, stderr)
	}
	if left := mountsUnder(dir); len(left) != 0 {
		t.Errorf("mounts left after gc: %v", left)
	}
}
