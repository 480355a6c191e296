package tests

// Benchmarks behind `make bench` (results in docs/benchmarks.md). Each one
// repeats its measurement BENCH_RUNS times (default 5) inside a single
// b.N iteration and reports medians, because this machine is noisy and a
// VM boot is far too slow for Go's own iteration scheme.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/supervisor"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

func benchRuns() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 5
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type samples map[string][]float64

func (s samples) report(b *testing.B) {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.ReportMetric(median(s[k]), k)
		b.Logf("%-28s median %8.1f  samples %v", k, median(s[k]), s[k])
	}
}

// BenchmarkGuestBoot boots the self-test target (no pod) with the
// production kernel command line and reads the guest's own clock: kernel
// start -> pre-init, and -> systemd's marker unit.
func BenchmarkGuestBoot(b *testing.B) {
	dir, accel, _ := unpackStage1(b)
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRuns(); r++ {
			sock := filepath.Join(dir, "ev.sock")
			os.Remove(sock)
			ln, err := net.Listen("unix", sock)
			if err != nil {
				b.Fatal(err)
			}
			cfg := selftestVM(dir, accel, false, sock)
			start := time.Now()
			vm, err := hypervisor.Start(cfg, filepath.Join(dir, "jail"), os.Stderr)
			if err != nil {
				b.Fatal(err)
			}
			ln.(*net.UnixListener).SetDeadline(time.Now().Add(bootTimeout))
			c, err := ln.Accept()
			if err != nil {
				vm.Kill()
				b.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(bootTimeout))
			line, e, err := selftestReady(c)
			marker := time.Since(start)
			if err != nil || e.TotalMs == 0 {
				vm.Kill()
				b.Fatalf("no boot marker: %v %q", err, line)
			}
			if err := vm.Wait(); err != nil {
				b.Fatal(err)
			}
			c.Close()
			ln.Close()
			s["guest_kernel_ms"] = append(s["guest_kernel_ms"], float64(e.KernelMs))
			s["guest_systemd_ms"] = append(s["guest_systemd_ms"], float64(e.TotalMs-e.KernelMs))
			s["guest_total_ms"] = append(s["guest_total_ms"], float64(e.TotalMs))
			s["host_qemu_to_marker_ms"] = append(s["host_qemu_to_marker_ms"], float64(marker.Microseconds())/1000)
			s["host_qemu_lifetime_ms"] = append(s["host_qemu_lifetime_ms"], float64(time.Since(start).Microseconds())/1000)
		}
	}
	s.report(b)
}

func readTimings(b testing.TB, p *harness.Pod) supervisor.Timings {
	var t supervisor.Timings
	raw, err := os.ReadFile(filepath.Join(p.Dir, contract.VMDir, supervisor.TimingsFile))
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		b.Fatal(err)
	}
	return t
}

// BenchmarkPodStart runs whole pods through the stage0 stand-in: one whose
// app prints a line (exec of run -> first byte of the app's output, with a
// breakdown) and one running /bin/true (total time of `rkt run`).
func BenchmarkPodStart(b *testing.B) {
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRuns(); r++ {
			st := harness.NewStage0(b)
			p := st.Prepare(b, harness.PodOpts{}, harness.BuildACI(b, sh("app", "echo first")))
			res := p.Run(b, harness.RunOpts{Net: "none"})
			if res.ExitCode != 0 {
				b.Fatalf("run: %d %s", res.ExitCode, res.Stderr)
			}
			t := readTimings(b, p)
			s["first_output_ms"] = append(s["first_output_ms"], t.FirstOutputMs)
			s["host_setup_ms"] = append(s["host_setup_ms"], t.HostSetupMs)
			s["qemu_to_kernel_ms"] = append(s["qemu_to_kernel_ms"], t.QEMUToKernelMs)
			s["kernel_ms"] = append(s["kernel_ms"], t.KernelMs)
			s["systemd_to_apps_ms"] = append(s["systemd_to_apps_ms"], t.SystemdToReadyMs)

			p2 := st.Prepare(b, harness.PodOpts{}, harness.BuildACI(b, harness.AppSpec{Name: "true", Exec: []string{"/bin/true"}}))
			res = p2.Run(b, harness.RunOpts{Net: "none"})
			if res.ExitCode != 0 {
				b.Fatalf("run: %d %s", res.ExitCode, res.Stderr)
			}
			s["true_pod_total_ms"] = append(s["true_pod_total_ms"], float64(res.Duration.Microseconds())/1000)
		}
	}
	s.report(b)
}

// descendants is pid and all its descendants.
func descendants(pid int) []int {
	pids := []int{pid}
	for i := 0; i < len(pids); i++ {
		// A child belongs to the thread that forked it: look at all.
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pids[i]))
		for _, task := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pids[i], task.Name()))
			for _, f := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(f); err == nil {
					pids = append(pids, n)
				}
			}
		}
	}
	return pids
}

// procPSS is one process's proportional set size.
type procPSS struct {
	name string // its comm
	kib  int64
}

func (p procPSS) String() string { return fmt.Sprintf("%s=%dKiB", p.name, p.kib) }

// pss sums the proportional set size (KiB) of pid and its descendants.
func pss(pid int) (total int64, procs []procPSS) {
	pids := descendants(pid)
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Pss:") {
				kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
				total += kb
				procs = append(procs, procPSS{strings.TrimSpace(string(comm)), kb})
			}
		}
	}
	return total, procs
}

func statusKiB(pid int, field string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb
		}
	}
	return 0
}

// idleAfterReady is how long after ready an idle pod is measured: the guest
// settles (its boot's systemd jobs done) within ~1 s of ready, run frees
// boot-time memory a second later, and free page reporting hands the
// guest's freed pages back 2 s after that.
const idleAfterReady = 8 * time.Second

// BenchmarkIdlePodMemory measures the host memory of one idle pod (a 128
// MiB guest: a 32 MiB app limit plus the 96 MiB base): the PSS of all its
// host processes, and QEMU's peak RSS.
func BenchmarkIdlePodMemory(b *testing.B) {
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRuns(); r++ {
			measureIdlePod(b, s, "")
		}
	}
	s.report(b)
}

// measureIdlePod starts one idle pod, lets it settle, and records into s,
// each key prefixed, the PSS of all its host processes and QEMU's peak RSS.
func measureIdlePod(b *testing.B, s samples, prefix string) {
	st := harness.NewStage0(b)
	p := st.Prepare(b, harness.PodOpts{MemoryLimit: "32M"}, harness.BuildACI(b, sh("app", "sleep 600")))
	run := p.Start(b, harness.RunOpts{Net: "none"})
	p.WaitReady(b, readyTimeout)
	time.Sleep(idleAfterReady)
	total, procs := pss(run.Pid)
	if qemu, ok := qemuPid(p); ok {
		s[prefix+"qemu_peak_rss_mib"] = append(s[prefix+"qemu_peak_rss_mib"], statusKiB(qemu, "VmHWM")/1024)
	}
	s[prefix+"pod_pss_mib"] = append(s[prefix+"pod_pss_mib"], float64(total)/1024)
	b.Logf("%spss by process: %v", prefix, procs)
	syscall.Kill(run.Pid, syscall.SIGTERM)
	run.Wait()
}

// abBuild is one side of an A/B comparison: a name, a build directory
// and settings of the stage1 (environment variables) for its runs.
type abBuild struct {
	name, dir string
	env       map[string]string
}

// dropTemplatesVar, as a setting of a BENCH_AB entry, empties the
// template store before each of its runs: every run makes its template.
const dropTemplatesVar = "BENCH_DROP_TEMPLATES"

// abBuilds parses BENCH_AB: name=build-dir entries, comma-separated, each
// optionally followed by settings, "+VAR=value" (e.g.
// "old=/tmp/old,new=$PWD/build" or
// "cold=$PWD/build+STAGE1_KVM_TEMPLATE=off,tpl=$PWD/build"); the benchmark
// is skipped without it.
func abBuilds(b *testing.B) []abBuild {
	spec := os.Getenv("BENCH_AB")
	if spec == "" {
		b.Skip("BENCH_AB not set")
	}
	var builds []abBuild
	for _, f := range strings.Split(spec, ",") {
		name, rest, ok := strings.Cut(f, "=")
		parts := strings.Split(rest, "+")
		if !ok || name == "" || parts[0] == "" {
			b.Fatalf("BENCH_AB entry %q: want name=build-dir[+VAR=value...]", f)
		}
		bd := abBuild{name: name, dir: parts[0], env: map[string]string{}}
		for _, kv := range parts[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				b.Fatalf("BENCH_AB entry %q: setting %q is not VAR=value", f, kv)
			}
			bd.env[k] = v
		}
		builds = append(builds, bd)
	}
	return builds
}

// abRuns calls run for every build of BENCH_AB in turn (STAGE1_BUILD_DIR
// set to it, and its settings; a setting another entry has is unset),
// benchRuns times per b.N: alternating, so that the machine's noise hits
// all builds alike. Templates are kept in a store of the benchmark's own.
func abRuns(b *testing.B, run func(abBuild)) {
	builds := abBuilds(b)
	store := b.TempDir()
	b.Setenv(settings.TemplateDirEnv, store)
	vars := map[string]bool{}
	for _, bd := range builds {
		for k := range bd.env {
			vars[k] = true
			b.Setenv(k, "")
		}
	}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRuns(); r++ {
			for _, bd := range builds {
				os.Setenv("STAGE1_BUILD_DIR", bd.dir)
				for k := range vars {
					if v, ok := bd.env[k]; ok {
						os.Setenv(k, v)
					} else {
						os.Unsetenv(k)
					}
				}
				if bd.env[dropTemplatesVar] != "" {
					dropAll(b, store)
				}
				run(bd)
			}
		}
	}
}

// dropAll empties a template store.
func dropAll(b *testing.B, store string) {
	ents, err := os.ReadDir(store)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(store, e.Name())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPodStartAB compares builds side by side (BENCH_AB, abBuilds);
// runs alternate between them so that the machine's noise hits all alike.
// It reports run exec -> the app's first byte per build, the whole run of
// a pod whose app prints and exits, and the difference of the two: about
// the time from the app's exit to run's.
func BenchmarkPodStartAB(b *testing.B) {
	s := samples{}
	abRuns(b, func(bd abBuild) {
		res, t := runBenchPod(b, bd.name, "echo first", "first\n")
		s[bd.name+"_whole_run_ms"] = append(s[bd.name+"_whole_run_ms"], float64(res.Duration.Milliseconds()))
		s[bd.name+"_exit_to_end_ms"] = append(s[bd.name+"_exit_to_end_ms"], float64(res.Duration.Milliseconds())-t.FirstOutputMs)
		s[bd.name+"_first_output_ms"] = append(s[bd.name+"_first_output_ms"], t.FirstOutputMs)
		s[bd.name+"_qemu_to_kernel_ms"] = append(s[bd.name+"_qemu_to_kernel_ms"], t.QEMUToKernelMs)
		s[bd.name+"_systemd_to_apps_ms"] = append(s[bd.name+"_systemd_to_apps_ms"], t.SystemdToReadyMs)
		if t.TemplateMakeMs > 0 {
			s[bd.name+"_template_make_ms"] = append(s[bd.name+"_template_make_ms"], t.TemplateMakeMs)
		}
		if t.RestoreMs > 0 {
			s[bd.name+"_restore_ms"] = append(s[bd.name+"_restore_ms"], t.RestoreMs)
		}
		endStages(s, bd.name, t, res.Duration)
	})
	s.report(b)
}

// BenchmarkPodEndAB measures a pod's end once its boot is over, builds
// side by side (BENCH_AB): the app prints, sleeps (the guest settles),
// prints and exits. It reports the app's last byte -> run's exit (about:
// the app's exit to run's), and the stages between.
func BenchmarkPodEndAB(b *testing.B) {
	s := samples{}
	abRuns(b, func(bd abBuild) {
		res, t := runBenchPod(b, bd.name, "echo first; sleep 4; echo last", "first\nlast\n")
		if t.LastOutputMs > 0 {
			s[bd.name+"_last_byte_to_end_ms"] = append(s[bd.name+"_last_byte_to_end_ms"], float64(res.Duration.Milliseconds())-t.LastOutputMs)
		}
		t.FirstOutputMs = t.LastOutputMs
		endStages(s, bd.name, t, res.Duration)
	})
	s.report(b)
}

// runBenchPod runs a one-app pod (a shell script) without networking and
// returns its result and run's timings; it fails unless the pod exits 0
// having printed stdout.
func runBenchPod(b *testing.B, build, script, stdout string) (harness.RunResult, supervisor.Timings) {
	st := harness.NewStage0(b)
	p := st.Prepare(b, harness.PodOpts{}, harness.BuildACI(b, sh("app", script)))
	res := p.Run(b, harness.RunOpts{Net: "none"})
	if res.ExitCode != 0 || res.Stdout != stdout {
		b.Fatalf("%s: run: %d %q %s", build, res.ExitCode, res.Stdout, res.Stderr)
	}
	return res, readTimings(b, p)
}

// endStages adds the stages of a pod's end (builds that note them): the
// app's (first, or given) byte -> exit reported -> output ended -> ended
// -> QEMU gone -> streams drained -> run's exit.
func endStages(s samples, build string, t supervisor.Timings, whole time.Duration) {
	if t.LoopEndMs == 0 || t.AppsExitedMs == 0 {
		return
	}
	for _, e := range []struct {
		name     string
		from, to float64
	}{
		{"end1_exit_reported_ms", t.FirstOutputMs, t.AppsExitedMs},
		{"end2_output_end_ms", t.AppsExitedMs, t.OutputEndMs},
		{"end3_ended_ms", t.OutputEndMs, t.EndedMs},
		{"end4_vm_gone_ms", t.EndedMs, t.VMExitMs},
		{"end5_drained_ms", t.VMExitMs, t.LoopEndMs},
		{"end6_teardown_ms", t.LoopEndMs, float64(whole.Milliseconds())},
	} {
		if e.from > 0 && e.to > 0 {
			s[build+"_"+e.name] = append(s[build+"_"+e.name], e.to-e.from)
		}
	}
}

// BenchmarkIdlePodMemoryAB compares builds side by side (BENCH_AB,
// abBuilds) as BenchmarkIdlePodMemory measures one: the PSS of all the
// idle pod's host processes and QEMU's peak RSS, runs alternating.
func BenchmarkIdlePodMemoryAB(b *testing.B) {
	s := samples{}
	abRuns(b, func(bd abBuild) { measureIdlePod(b, s, bd.name+"_") })
	s.report(b)
}

// BenchmarkTCGBuffer compares TCG translation cache sizes side by side
// (STAGE1_KVM_TCG_BUFFER_MIB, runs interleaved): pod start to the app's
// first byte against the idle pod's PSS and QEMU's peak RSS (the cache is
// emptied once the guest settles, so the size weighs on boot, not idle).
func BenchmarkTCGBuffer(b *testing.B) {
	sizes := []string{"32", "64", "128"}
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRuns(); r++ {
			for _, size := range sizes {
				b.Setenv(settings.TCGBufferEnv, size)
				st := harness.NewStage0(b)
				p := st.Prepare(b, harness.PodOpts{}, harness.BuildACI(b, sh("app", "echo first")))
				if res := p.Run(b, harness.RunOpts{Net: "none"}); res.ExitCode != 0 {
					b.Fatalf("run: %d %s", res.ExitCode, res.Stderr)
				}
				key := "tb" + size + "_"
				s[key+"first_output_ms"] = append(s[key+"first_output_ms"], readTimings(b, p).FirstOutputMs)

				p = st.Prepare(b, harness.PodOpts{MemoryLimit: "32M"}, harness.BuildACI(b, sh("app", "sleep 600")))
				run := p.Start(b, harness.RunOpts{Net: "none"})
				p.WaitReady(b, readyTimeout)
				time.Sleep(idleAfterReady)
				total, _ := pss(run.Pid)
				if qemu, ok := qemuPid(p); ok {
					s[key+"qemu_peak_rss_mib"] = append(s[key+"qemu_peak_rss_mib"], statusKiB(qemu, "VmHWM")/1024)
				}
				s[key+"pod_pss_mib"] = append(s[key+"pod_pss_mib"], float64(total)/1024)
				syscall.Kill(run.Pid, syscall.SIGTERM)
				run.Wait()
			}
		}
	}
	s.report(b)
}

// BenchmarkEnter measures `rkt enter` of /bin/true into a running pod,
// 20 times per run by default (BENCH_ENTERS).
func BenchmarkEnter(b *testing.B) {
	enters := 20
	if n, err := strconv.Atoi(os.Getenv("BENCH_ENTERS")); err == nil && n > 0 {
		enters = n
	}
	s := samples{}
	for i := 0; i < b.N; i++ {
		st := harness.NewStage0(b)
		p := st.Prepare(b, harness.PodOpts{}, harness.BuildACI(b, sh("app", "sleep 600")))
		run := p.Start(b, harness.RunOpts{Net: "none"})
		p.WaitReady(b, readyTimeout)
		for e := 0; e < enters; e++ {
			r := p.Enter(b, harness.EnterOpts{App: "app"}, "/bin/true")
			if r.ExitCode != 0 {
				b.Fatalf("enter: %d %s", r.ExitCode, r.Stderr)
			}
			s["enter_true_ms"] = append(s["enter_true_ms"], float64(r.Duration.Microseconds())/1000)
		}
		syscall.Kill(run.Pid, syscall.SIGTERM)
		run.Wait()
	}
	s.report(b)
}

// BenchmarkStopAndGC measures stop (graceful and --force) until run has
// exited, and gc of the exited pod.
func BenchmarkStopAndGC(b *testing.B) {
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRuns(); r++ {
			for _, force := range []bool{false, true} {
				st := harness.NewStage0(b)
				p := st.Prepare(b, harness.PodOpts{}, harness.BuildACI(b, sh("app", "sleep 600")))
				run := p.Start(b, harness.RunOpts{Net: "none"})
				p.WaitReady(b, readyTimeout)
				start := time.Now()
				if res := p.Stop(b, harness.StopOpts{Force: force}); res.ExitCode != 0 {
					b.Fatalf("stop: %d %s", res.ExitCode, res.Stderr)
				}
				run.Wait()
				name := "stop_graceful_ms"
				if force {
					name = "stop_force_ms"
				}
				s[name] = append(s[name], float64(time.Since(start).Microseconds())/1000)
				gcStart := time.Now()
				if code, stderr := st.GC(b, p); code != 0 {
					b.Fatalf("gc: %d %s", code, stderr)
				}
				s["gc_ms"] = append(s["gc_ms"], float64(time.Since(gcStart).Microseconds())/1000)
			}
		}
	}
	s.report(b)
}

// ioMBps reads a "<label> <start> <end>" line (guest uptime seconds around a
// 256 MiB dd) and returns MiB/s.
func ioMBps(out string, label string) (float64, bool) {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(strings.TrimPrefix(l, label+" "))
		if !strings.HasPrefix(l, label+" ") || len(f) != 2 {
			continue
		}
		t0, err0 := strconv.ParseFloat(f[0], 64)
		t1, err1 := strconv.ParseFloat(f[1], 64)
		if err0 != nil || err1 != nil || t1 <= t0 {
			return 0, false
		}
		return 256 / (t1 - t0), true
	}
	return 0, false
}

// BenchmarkFileIO writes and reads back a 256 MiB file with dd (fsync on
// write, the guest's page cache dropped before reading) on the app's rootfs
// and on a host volume, with both shares over 9p (the default) and over
// virtiofs (STAGE1_KVM_SHARED_FS), runs interleaved, next to the same dd on
// the host.
func BenchmarkFileIO(b *testing.B) {
	// busybox's dd prints no timing: take the guest's uptime around it.
	script := `cd "$1"; up() { cut -d' ' -f1 /proc/uptime; }
t0=$(up); dd if=/dev/zero of=f bs=1M count=256 conv=fsync 2>/dev/null; echo "w $2 $t0 $(up)"
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(up); dd if=f of=/dev/null bs=1M 2>/dev/null; echo "r $2 $t0 $(up)"; rm -f f`
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRuns(); r++ {
			for _, fs := range []string{"9p", "virtiofs"} {
				b.Setenv(settings.SharedFSEnv, fs)
				vol := b.TempDir()
				st := harness.NewStage0(b)
				spec := harness.AppSpec{Name: "io", Exec: []string{"/bin/sh", "-c", "cat > /io.sh <<'EOS'\n" + script + "\nEOS\nsh /io.sh /tmp rootfs; sh /io.sh /mnt/vol volume"}}
				spec.MountPoints = []types.MountPoint{{Name: types.ACName("vol"), Path: "/mnt/vol"}}
				p := st.Prepare(b, harness.PodOpts{Volumes: []types.Volume{{Name: types.ACName("vol"), Kind: "host", Source: vol}}}, harness.BuildACI(b, spec))
				res := p.Run(b, harness.RunOpts{Net: "none", DisablePaths: true})
				if res.ExitCode != 0 {
					b.Fatalf("run: %d %s %s", res.ExitCode, res.Stdout, res.Stderr)
				}
				for _, m := range []struct{ label, key string }{
					{"w rootfs", "rootfs_write_MBps"}, {"r rootfs", "rootfs_read_MBps"},
					{"w volume", "volume_write_MBps"}, {"r volume", "volume_read_MBps"},
				} {
					v, ok := ioMBps(res.Stdout, m.label)
					if !ok {
						b.Fatalf("no %q figure in %q (stderr %q)", m.label, res.Stdout, res.Stderr)
					}
					key := "guest_" + fs + "_" + m.key
					s[key] = append(s[key], v)
				}
			}
			host := b.TempDir()
			start := time.Now()
			if out, err := exec.Command("dd", "if=/dev/zero", "of="+host+"/f", "bs=1M", "count=256", "conv=fsync").CombinedOutput(); err != nil {
				b.Fatalf("host dd: %v %s", err, out)
			}
			s["host_write_MBps"] = append(s["host_write_MBps"], 256/time.Since(start).Seconds())
			exec.Command("sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches").Run()
			start = time.Now()
			if out, err := exec.Command("dd", "if="+host+"/f", "of=/dev/null", "bs=1M").CombinedOutput(); err != nil {
				b.Fatalf("host dd: %v %s", err, out)
			}
			s["host_read_MBps"] = append(s["host_read_MBps"], 256/time.Since(start).Seconds())
		}
	}
	s.report(b)
}
