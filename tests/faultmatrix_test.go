package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/supervisor"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// The fault matrix: each fault ends run with a non-zero exit and a clear
// message on its stderr, and gc then leaves the host as it was before the
// pod (processes, mounts, network namespaces, links, iptables rules, IP
// leases). run killed at each start step is TestKillRunAtEachStartStep.
func TestFaultMatrix(t *testing.T) {
	steps := supervisor.StepIDs()
	vmSteps := steps[slices.Index(steps, "vm"):] // QEMU exists from here on
	for _, step := range vmSteps {
		t.Run("kill-qemu-after-"+step, func(t *testing.T) {
			faultCase(t, fault{pauseAfter: step, inject: killPodProcess("qemu-system-x86_64"),
				want: []string{"VM stopped before its apps finished", "qemu: signal: killed"}})
		})
		t.Run("kill-virtiofsd-after-"+step, func(t *testing.T) {
			t.Setenv(settings.SharedFSEnv, "virtiofs")
			faultCase(t, fault{pauseAfter: step, inject: killPodProcess("virtiofsd"),
				want: []string{"virtiofsd exited: the one serving share pod"}})
		})
	}
	t.Run("guest-panic", func(t *testing.T) {
		// Root with every capability and rkt's protected paths off may
		// crash its own kernel; the host must only see the VM end.
		faultCase(t, fault{
			app:  sh("app", "echo going; sleep 1; echo c > /proc/sysrq-trigger; sleep 600"),
			opts: harness.RunOpts{DisablePaths: true, DisableCapabilities: true},
			want: []string{"VM stopped before its apps finished", "Kernel panic"},
		})
	})
	t.Run("full-filesystem", func(t *testing.T) {
		// Full once stage0 has done its part (rkt fails by itself
		// before that), from run's first step on.
		faultCase(t, fault{smallFS: true, pauseAfter: "lock", inject: fillFS, want: []string{"no space left on device"}})
	})
	t.Run("failing-cni-plugin", func(t *testing.T) {
		conf := failingNetwork(t)
		faultCase(t, fault{opts: harness.RunOpts{Net: "s1fail", LocalConfig: conf},
			gcOpts: harness.GCOpts{LocalConfig: conf},
			want:   []string{"s1fail", "the plugin failed on purpose"}})
	})
	t.Run("tight-memory-cgroup", func(t *testing.T) {
		faultCase(t, fault{pauseAfter: "channels", inject: intoMemoryCgroup(t, 48<<20),
			want: []string{"VM stopped before its apps finished", "qemu: signal: killed: killed by the kernel for lack of memory"}})
	})
	t.Run("tight-memory-cgroup-no-template", func(t *testing.T) {
		// No template of the pod's shape yet: none is made in a memory
		// cgroup too small for its VM (a making VM's RAM is a file,
		// which the kernel would write back and read again for minutes
		// instead of running out of memory), so the pod fails as a
		// cold one does.
		t.Setenv(settings.TemplateDirEnv, templateDir(t))
		faultCase(t, fault{pauseAfter: "channels", inject: intoMemoryCgroup(t, 48<<20),
			want: []string{"not making a template", "qemu: signal: killed: killed by the kernel for lack of memory"}})
	})
}

// fault is one case of the matrix.
type fault struct {
	app  harness.AppSpec // default: an app that sleeps
	opts harness.RunOpts
	// pauseAfter holds run after that start step while inject runs.
	pauseAfter string
	inject     func(t *testing.T, p *harness.Pod, runPid int)
	// smallFS puts the stage0 directory on a file system of its own,
	// emptied of any filler (fillFS) before gc.
	smallFS bool
	gcOpts  harness.GCOpts
	// want: what run's stderr must say.
	want []string
}

func faultCase(t *testing.T, f fault) {
	if f.app.Name == "" {
		f.app = sh("app", "sleep 600")
	}
	if f.opts.Net == "" {
		f.opts.Net = "default"
	}
	if f.smallFS {
		onSmallFS(t)
	}
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, f.app))
	before := snapshot(t, s.Dir)
	if f.pauseAfter != "" {
		f.opts.Env = append(f.opts.Env, settings.PauseAfterEnv+"="+f.pauseAfter)
	}
	f.opts.Timeout = 3 * time.Minute
	run := p.Start(t, f.opts)
	if f.pauseAfter != "" {
		waitPaused(t, run, f.pauseAfter)
		f.inject(t, p, run.Pid)
		syscall.Kill(run.Pid, syscall.SIGCONT)
	}
	r := run.Wait()
	if r.ExitCode == 0 {
		t.Errorf("run exited 0 despite the fault; stderr:\n%s", tailOf(r.Stderr))
	}
	for _, w := range f.want {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("run's stderr does not say %q:\n%s", w, tailOf(r.Stderr))
		}
	}
	if f.smallFS {
		os.Remove(filepath.Join(s.Dir, fillerName))
	}
	gcLeavesNothing(t, s, p, f.gcOpts)
	assertHostAsBefore(t, before, snapshot(t, s.Dir), "after the fault and gc")
}

// killPodProcess kills, with SIGKILL, the pod's process whose command line
// names program.
func killPodProcess(program string) func(t *testing.T, p *harness.Pod, runPid int) {
	return func(t *testing.T, p *harness.Pod, runPid int) {
		t.Helper()
		for _, pid := range harness.ProcessesMentioning(p.Dir) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if argv := strings.Split(string(b), "\x00"); slices.ContainsFunc(argv, func(a string) bool { return filepath.Base(a) == program }) {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatalf("no %s process of the pod", program)
	}
}

// intoMemoryCgroup moves run into a new memory cgroup (v1, as on these
// hosts) of limit bytes, removed at the end of the test; QEMU, started
// after, is in it too.
func intoMemoryCgroup(t *testing.T, limit int64) func(t *testing.T, p *harness.Pod, runPid int) {
	dir := filepath.Join("/sys/fs/cgroup/memory", fmt.Sprintf("stage1-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("no memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		// Once its processes are gone.
		waitUntil(10*time.Second, 50*time.Millisecond, func() bool { return syscall.Rmdir(dir) == nil })
	})
	for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil && f == "memory.limit_in_bytes" {
			t.Fatal(err)
		}
	}
	return func(t *testing.T, p *harness.Pod, runPid int) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(runPid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// onSmallFS makes $TMPDIR, where the stage0 directory is made, a tmpfs of
// its own for the test.
func onSmallFS(t *testing.T) {
	dir, err := os.MkdirTemp("", "s1fs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1g,mode=0700"); err != nil {
		t.Fatal(err)
	}
	// Registered before the stage0, so it runs after the stage0's own
	// cleanup and leak checks.
	t.Cleanup(func() {
		syscall.Unmount(dir, syscall.MNT_DETACH)
		os.Remove(dir)
	})
	t.Setenv("TMPDIR", dir)
}

// fillerName is the file fillFS fills the stage0's file system with.
const fillerName = "filler"

// fillFS fills the file system the pod directory is on.
func fillFS(t *testing.T, p *harness.Pod, _ int) {
	f, err := os.Create(filepath.Join(p.Dir, "..", "..", "..", fillerName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n := len(buf); n > 0; n /= 2 {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

// failingNetwork is a local config whose network s1fail runs a plugin that
// sets up the pod's veth and address (the ptp plugin does the work) and
// then fails, as a plugin that breaks half-way does: run must fail and
// undo what it did.
func failingNetwork(t *testing.T) string {
	plugins := "/usr/lib/rkt/plugins/net"
	made := false
	if _, err := os.Stat(plugins); os.IsNotExist(err) {
		if err := os.MkdirAll(plugins, 0o755); err != nil {
			t.Fatal(err)
		}
		made = true
	}
	name := fmt.Sprintf("s1test-fail-%d", os.Getpid())
	plugin := filepath.Join(plugins, name)
	script := `#!/bin/sh
# Does what ptp does, then fails the ADD; DEL is ptp's.
ptp=
for d in $(echo "$CNI_PATH" | tr : ' '); do [ -x "$d/ptp" ] && ptp=$d/ptp && break; done
if [ "$CNI_COMMAND" = ADD ]; then
	"$ptp" >/dev/null || exit 1
	echo '{"cniVersion":"0.4.0","code":100,"msg":"the plugin failed on purpose"}'
	exit 1
fi
exec "$ptp"
`
	if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(plugin)
		if made {
			os.Remove(plugins)
		}
	})
	conf := t.TempDir()
	os.MkdirAll(filepath.Join(conf, "net.d"), 0o755)
	if err := os.WriteFile(filepath.Join(conf, "net.d", "10-s1fail.conf"), []byte(`{
	"cniVersion": "0.4.0", "name": "s1fail", "type": "`+name+`", "ipMasq": true,
	"ipam": {"type": "host-local", "subnet": "10.199.78.0/24"}
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}
