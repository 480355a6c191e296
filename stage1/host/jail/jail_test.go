package jail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/memcg"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/jailplan"
)

// The test binary is its own jailer: started with a plan, it does the
// jailer's work.
func TestMain(m *testing.M) {
	if plan, ok := os.LookupEnv(PlanEnv); ok {
		err := Exec(plan, os.Args[1:])
		fmt.Fprintln(os.Stderr, "jailer:", err)
		os.Exit(254)
	}
	os.Exit(m.Run())
}

// busybox is a static program the jail can hold alone.
const busybox = "/bin/busybox"

func needRootAndBusybox(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the jailer needs root")
	}
	if _, err := os.Stat(busybox); err != nil {
		t.Skip("no static busybox (Debian's busybox-static)")
	}
}

func self(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// run starts argv through the jailer and returns its output once it ends.
func run(t *testing.T, p jailplan.Plan, files []*os.File, argv ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd, err := Start(p, argv, Options{Jailer: self(t), Files: files, Stdout: &out, Stderr: &out})
	if err != nil {
		return "", err
	}
	err = cmd.Wait()
	return out.String(), err
}

func statusField(out, key string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "(none)"
}

// A program in a jail sees only its mounts, as the plan's user with the
// plan's capabilities and no_new_privs; what it writes on a share lands on
// the host, a read-only share stays so, and it gets exactly its
// environment and inherited descriptors.
func TestJail(t *testing.T) {
	needRootAndBusybox(t)
	dir := t.TempDir()
	root, share, ro := filepath.Join(dir, "jail"), filepath.Join(dir, "share"), filepath.Join(dir, "ro")
	for _, d := range []string{root, share, ro} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	console := filepath.Join(dir, "console.log")
	p := jailplan.Plan{
		Root: root, Proc: true,
		Mounts: []jailplan.Mount{
			{Source: busybox, Target: "/bin/busybox", ReadOnly: true, Exec: true},
			{Source: "/dev/null", Target: "/dev/null", Device: true},
			{Source: share, Target: "/shares/0", Recursive: true},
			{Source: ro, Target: "/shares/1", ReadOnly: true, Recursive: true},
			{Source: console, Target: "/vm/console.log", Create: true},
			{Source: filepath.Join(dir, "missing"), Target: "/opt/x", Optional: true},
		},
		User: true, UID: jailplan.QEMUUID, GID: jailplan.QEMUGID,
		Caps:  jailplan.QEMUCaps,
		Files: 1,
		Env:   []string{"JAILED=yes"},
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, err := run(t, p, []*os.File{w}, "/bin/busybox", "sh", "-c", `
cat /proc/self/status
echo "root: $(ls / | tr '\n' ' ')"
echo "procs: $(ls /proc | grep '^[0-9]' | tr '\n' ' ')"
echo "env: $(tr '\0' ' ' < /proc/$$/environ)"
touch /shares/0/made && chown 1234:1234 /shares/0/made && echo "share: ok"
touch /shares/1/x 2>/dev/null || echo "ro: refused"
touch /planted 2>/dev/null || echo "jailroot: read-only"
echo to-console > /vm/console.log
echo to-fd3 >&3
`)
	w.Close()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	caps := jailplan.Mask(jailplan.QEMUCaps)
	uid := fmt.Sprint(jailplan.QEMUUID)
	for k, want := range map[string]string{
		"Uid": strings.Repeat(uid+"\t", 3) + uid, "Groups": "",
		"CapInh": caps, "CapPrm": caps, "CapEff": caps, "CapBnd": caps, "CapAmb": caps,
		"NoNewPrivs": "1", "root": "bin dev proc shares vm",
		"env": "JAILED=yes", "share": "ok", "ro": "refused", "jailroot": "read-only",
	} {
		if got := statusField(out, k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	// Its own PID namespace: the shell is its init.
	if procs := statusField(out, "procs"); !strings.HasPrefix(procs, "1 ") {
		t.Errorf("processes seen: %q", procs)
	}
	if fi, err := os.Stat(filepath.Join(share, "made")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 1234 {
		t.Errorf("file made on the share: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(console); string(b) != "to-console\n" {
		t.Errorf("console log %q", b)
	}
	if b, _ := io.ReadAll(r); string(b) != "to-fd3\n" {
		t.Errorf("descriptor 3 got %q", b)
	}
	if es, _ := os.ReadDir(root); len(es) != 0 {
		t.Errorf("the jail shows on the host: %v", es)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(b, []byte(dir)) {
		t.Errorf("a jail mount reached the host's mount table:\n%s", b)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// Without a jail (virtiofsd): the host's root and user, the bounding set
// cut to the plan's, no_new_privs.
func TestBoundingOnly(t *testing.T) {
	needRootAndBusybox(t)
	p := jailplan.ForVirtioFSD()
	p.Files = 0
	out, err := run(t, p, nil, busybox, "sh", "-c", "cat /proc/self/status; test -e /etc/passwd && echo host: root")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// What the plan keeps of what this test has.
	b, _ := os.ReadFile("/proc/self/status")
	var ours uint64
	fmt.Sscanf(statusField(string(b), "CapBnd"), "%x", &ours)
	var want uint64
	fmt.Sscanf(jailplan.Mask(jailplan.VirtioFSDCaps), "%x", &want)
	caps := fmt.Sprintf("%016x", want&ours)
	for k, want := range map[string]string{
		"CapBnd": caps, "CapEff": caps,
		"NoNewPrivs": "1", "host": "root",
	} {
		if got := statusField(out, k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if uid := statusField(out, "Uid"); !strings.HasPrefix(uid, "0\t") {
		t.Errorf("Uid %q, want root", uid)
	}
}

// A jail that cannot be built is an error from Start that says why; the
// program never runs.
func TestJailFailure(t *testing.T) {
	needRootAndBusybox(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "jail")
	os.Mkdir(root, 0o700)
	p := jailplan.Plan{
		Root: root,
		Mounts: []jailplan.Mount{
			{Source: busybox, Target: "/bin/busybox", ReadOnly: true, Exec: true},
			{Source: filepath.Join(dir, "nowhere"), Target: "/shares/0"},
		},
		Caps: jailplan.QEMUCaps,
	}
	_, err := run(t, p, nil, "/bin/busybox", "touch", filepath.Join(dir, "ran"))
	if !errors.Is(err, ErrJailer) || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("err = %v, want ErrJailer naming the missing source", err)
	}
	// A symlink as a source is refused too.
	os.Symlink("/etc", filepath.Join(dir, "link"))
	p.Mounts[1].Source = filepath.Join(dir, "link")
	if _, err := run(t, p, nil, "/bin/busybox", "true"); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink source: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("the program ran")
	}
	if _, err := Start(p, []string{"/bin/true"}, Options{Jailer: self(t), Files: []*os.File{os.Stdin}}); !errors.Is(err, ErrJailer) {
		t.Errorf("descriptors not matching the plan: %v", err)
	}
	if slices.Contains([]uintptr{cloneFlags(jailplan.Plan{})}, 0) && cloneFlags(p)&syscall.CLONE_NEWNS == 0 {
		t.Error("a jail without its mount namespace")
	}
}

// The jail's own cost at start: a program started through the jailer with
// a plan like QEMU's (its mounts, namespaces, user) against the same
// program started directly, up to its exec (docs/benchmarks.md).
func BenchmarkStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the jailer needs root")
	}
	if _, err := os.Stat(busybox); err != nil {
		b.Skip("no static busybox")
	}
	dir := b.TempDir()
	share := filepath.Join(dir, "share")
	os.Mkdir(share, 0o755)
	exe, _ := os.Executable()
	if j := os.Getenv("JAILER"); j != "" {
		exe = j // the real one (build/bin/jailer), smaller than this test
	}
	// A QEMU-sized plan: the binary, firmware, kernel and image, two
	// devices, the console, five ports and three shares.
	mounts := []jailplan.Mount{
		{Source: busybox, Target: "/qemu/bin/busybox", ReadOnly: true, Exec: true},
		{Source: "/dev/null", Target: "/dev/null", Device: true},
		{Source: "/dev/urandom", Target: "/dev/urandom", ReadOnly: true, Device: true},
		{Source: filepath.Join(dir, "console.log"), Target: "/vm/console.log", Create: true},
	}
	for i := 0; i < 3; i++ {
		mounts = append(mounts,
			jailplan.Mount{Source: busybox, Target: fmt.Sprintf("/boot/%d", i), ReadOnly: true},
			jailplan.Mount{Source: share, Target: fmt.Sprintf("/shares/%d", i), Recursive: true})
	}
	for i := 0; i < 5; i++ {
		mounts = append(mounts, jailplan.Mount{Source: filepath.Join(dir, "console.log"), Target: fmt.Sprintf("/vm/port%d", i)})
	}
	b.Run("jailed", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			root := filepath.Join(dir, fmt.Sprint("jail", i))
			os.Mkdir(root, 0o700)
			p := jailplan.Plan{Root: root, Mounts: mounts, Proc: true, User: true,
				UID: jailplan.QEMUUID, GID: jailplan.QEMUGID, Caps: jailplan.QEMUCaps}
			cmd, err := Start(p, []string{"/qemu/bin/busybox", "true"}, Options{Jailer: exe})
			if err != nil {
				b.Fatal(err)
			}
			// What a pod's start waits for ends here; the rest is the
			// exit (the namespaces' teardown).
			b.StopTimer()
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("direct", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cmd := exec.Command(busybox, "true")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// With a cgroup in the plan, the program runs in it from its first
// instruction (the jailer joined before executing it); a cgroup that
// cannot be joined is the jailer's error, and nothing runs.
func TestJoinsCgroup(t *testing.T) {
	needRootAndBusybox(t)
	parent, err := memcg.Parent()
	if err != nil {
		t.Skip(err)
	}
	g, err := memcg.Create(parent, memcg.Name("jail-test-"+strconv.Itoa(os.Getpid())), 256<<20)
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { g.Remove() })
	p := jailplan.ForVirtioFSD()
	p.Files, p.Cgroup = 0, g.Dir
	out, err := run(t, p, nil, busybox, "cat", "/proc/self/cgroup")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if in, ok := memcg.Locate(out, memcg.Root); !ok || in.Dir != g.Dir {
		t.Errorf("the program's memory cgroup: %+v, want %s\n%s", in, g.Dir, out)
	}
	p.Cgroup = filepath.Join(g.Dir, "missing")
	if _, err := run(t, p, nil, busybox, "true"); !errors.Is(err, ErrJailer) || !strings.Contains(err.Error(), "join cgroup") {
		t.Errorf("a cgroup that cannot be joined: %v", err)
	}
}
