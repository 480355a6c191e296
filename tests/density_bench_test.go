package tests

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// densitySettle is how long the pods are left alone once the last is
// ready, by default (BENCH_DENSITY_SETTLE, a Go duration, overrides it).
// Besides the guest settling (idleAfterReady), run frees the boot-time
// memory and the guest hands back its free pages, a burst of work for the
// newest pods; 30 s after its boot a guest writes back the boot's dirty
// pages, ~40 s after it run drops the translations of that aftermath
// (supervisor's lateFlushDelay), and what the guest runs now and then is
// translated anew over the next minutes: the last of it about five and a
// half minutes after ready, when the guest's workqueue retires a kernel
// thread left over from the start, which run drops (trimTranslations) a
// minute later at most (docs/benchmarks.md, "The five-minute jump").
// Idle is after all that: every pod is measured as it stays for good.
const densitySettle = 7 * time.Minute

// densityIdle is how long idle pods are watched for the CPU they burn,
// after they have settled (idleAfterReady).
const densityIdle = 20 * time.Second

// BenchmarkDensity starts N idle pods through the stage0 stand-in, one
// after another, each once the one before is ready (BENCH_DENSITY_N, a
// comma-separated list of N; BENCH_DENSITY_NET, the --net of each, none
// by default). Once all have settled (densitySettle) it reports, per pod:
// the summed PSS of the pods' host processes, the drop in MemAvailable,
// the host CPU the idle pods burn (% of one core), the start time (run
// exec to ready) of the first and the N-th pod, and how many answer
// `enter`. Then it stops every pod, collects it (gc) and checks that the
// host is as before. `make bench-density`.
//
// BENCH_DENSITY_KSM=on|off turns the host's KSM on or off for the run
// (restored after; on: scanning ksmPagesToScan pages per wake-up); either
// way the memory KSM shares and the CPU ksmd burns while the pods idle
// are reported.
func BenchmarkDensity(b *testing.B) {
	spec := os.Getenv("BENCH_DENSITY_N")
	if spec == "" {
		b.Skip("BENCH_DENSITY_N not set (make bench-density)")
	}
	if v := os.Getenv("BENCH_DENSITY_KSM"); v != "" {
		setKSM(b, v == "on")
	}
	settle := densitySettle
	if v := os.Getenv("BENCH_DENSITY_SETTLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			b.Fatalf("BENCH_DENSITY_SETTLE: %q is not a duration", v)
		}
		settle = d
	}
	net := os.Getenv("BENCH_DENSITY_NET")
	if net == "" {
		net = "none"
	}
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			b.Fatalf("BENCH_DENSITY_N: %q is not a number of pods", f)
		}
		b.Run(fmt.Sprintf("N=%d/net=%s", n, net), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				measureDensity(b, n, net, settle)
			}
		})
	}
}

// idlePod is one pod of a density run.
type idlePod struct {
	pod *harness.Pod
	run *harness.Running
}

func measureDensity(b *testing.B, n int, net string, settle time.Duration) {
	s := harness.NewStage0(b)
	before := snapshot(b, s.Dir)
	memBefore := meminfo(b)
	pods := make([]idlePod, 0, n)
	// Every pod ends, whatever happened (the harness's own timeout and
	// stray checks follow).
	defer func() { stopPods(pods) }()
	var startMs []float64
	for i := 0; i < n; i++ {
		p := s.Prepare(b, harness.PodOpts{MemoryLimit: "32M"}, harness.BuildACI(b, sh("app", "sleep 3600")))
		start := time.Now()
		// Alive until the last pod has started and all are measured.
		run := p.Start(b, harness.RunOpts{Net: net, Timeout: time.Duration(n)*30*time.Second + settle + 10*time.Minute})
		pods = append(pods, idlePod{p, run})
		p.WaitReady(b, readyTimeout)
		startMs = append(startMs, float64(time.Since(start).Milliseconds()))
	}
	time.Sleep(settle)

	ksmd := ksmdPid()
	cpu0, ns0, k0, t0 := podsCPUTicks(pods), podsCPUNanos(pods), harness.ProcessCPUTicks(ksmd), time.Now()
	time.Sleep(densityIdle)
	cpu1, ns1, k1, t1 := podsCPUTicks(pods), podsCPUNanos(pods), harness.ProcessCPUTicks(ksmd), time.Now()
	cpuPct := float64(cpu1-cpu0) / float64(clockTicks) / t1.Sub(t0).Seconds() * 100
	schedPct := float64(ns1-ns0) / float64(t1.Sub(t0).Nanoseconds()) * 100
	ksmdPct := float64(k1-k0) / float64(clockTicks) / t1.Sub(t0).Seconds() * 100
	ksmShared := float64(ksmValue("pages_sharing")*int64(os.Getpagesize())) / (1 << 20)

	var pssKiB int64
	byProc := map[string]int64{}    // process name -> KiB, all pods
	byQEMUMap := map[string]int64{} // kind of QEMU mapping -> KiB, all pods
	for _, ip := range pods {
		kib, procs := pss(ip.run.Pid)
		pssKiB += kib
		for _, pr := range procs {
			byProc[pr.name] += pr.kib
		}
		if pid, ok := qemuPid(ip.pod); ok {
			for kind, k := range qemuPSSByKind(pid) {
				byQEMUMap[kind] += k
			}
		}
	}
	memAfter := meminfo(b)
	memDrop := float64(memBefore["MemAvailable"]-memAfter["MemAvailable"]) / 1024

	entered := 0
	for _, ip := range pods {
		if r := ip.pod.Enter(b, harness.EnterOpts{}, "/bin/true"); r.ExitCode == 0 {
			entered++
		}
	}
	b.ReportMetric(float64(pssKiB)/1024/float64(n), "pss_MiB/pod")
	b.ReportMetric(memDrop/float64(n), "memavail_drop_MiB/pod")
	b.ReportMetric(cpuPct/float64(n), "idle_cpu_%core/pod")
	b.ReportMetric(cpuPct, "idle_cpu_%core_all")
	b.ReportMetric(startMs[0], "first_start_ms")
	b.ReportMetric(startMs[n-1], "last_start_ms")
	b.ReportMetric(float64(entered), "entered")
	b.ReportMetric(ksmShared, "ksm_shared_MiB")
	b.ReportMetric(ksmdPct, "ksmd_cpu_%core")
	b.Logf("N=%d net=%s: PSS %.1f MiB/pod, MemAvailable -%.1f MiB/pod, idle CPU %.2f%% of a core/pod (%.1f%% all), start first %.0f ms, N-th %.0f ms, %d/%d answer enter; KSM (run=%d) shares %.1f MiB, ksmd %.1f%% of a core",
		n, net, float64(pssKiB)/1024/float64(n), memDrop/float64(n), cpuPct/float64(n), cpuPct, startMs[0], startMs[n-1], entered, n, ksmValue("run"), ksmShared, ksmdPct)
	b.ReportMetric(schedPct/float64(n), "idle_cpu_sched_%core/pod")
	b.Logf("QEMU's PSS per pod by mapping: %s", perPod(byQEMUMap, n))
	b.Logf("host memory per pod by kind (growth of /proc/meminfo's fields): %s", meminfoGrowth(memBefore, memAfter, n))
	b.Logf("PSS per pod by process: %s; idle CPU by the scheduler's clock %.2f%% of a core/pod", perPod(byProc, n), schedPct/float64(n))
	if entered != n {
		b.Errorf("%d of %d pods did not answer enter", n-entered, n)
	}

	// Stopped here, not again by the deferred stop: their PIDs are gone.
	stopped := pods
	pods = nil
	stopPods(stopped)
	for _, ip := range stopped {
		// rkt's overlay mounts stay until gc, as with rkt.
		if code, stderr := s.GC(b, ip.pod, harness.GCOpts{}); code != 0 {
			b.Errorf("gc of pod %s exited %d: %s", ip.pod.UUID, code, stderr)
		}
	}
	assertHostAsBefore(b, before, snapshot(b, s.Dir), fmt.Sprintf("%d pods stopped", n))
}

// stopPods stops every pod at once (SIGTERM: an orderly stop) and waits
// for each.
func stopPods(pods []idlePod) {
	for _, ip := range pods {
		syscall.Kill(ip.run.Pid, syscall.SIGTERM)
	}
	for _, ip := range pods {
		ip.run.Wait()
	}
}

// clockTicks is the unit of /proc/<pid>/stat's CPU times (USER_HZ).
const clockTicks = 100

// podsCPUTicks sums the user and system CPU time of every host process of
// the pods (run, the jailer's children: QEMU with all its threads).
func podsCPUTicks(pods []idlePod) int64 {
	var total int64
	for _, ip := range pods {
		for _, pid := range descendants(ip.run.Pid) {
			total += harness.ProcessCPUTicks(pid)
		}
	}
	return total
}

// podsCPUNanos sums the time every thread of every host process of the
// pods has spent on a CPU, from the scheduler's own clock
// (/proc/<pid>/task/<tid>/schedstat): exact, where the ticks of
// podsCPUTicks are samples that charge a whole tick to whatever runs when
// it falls.
func podsCPUNanos(pods []idlePod) int64 {
	var total int64
	for _, ip := range pods {
		for _, pid := range descendants(ip.run.Pid) {
			tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
			for _, task := range tasks {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
				if err != nil {
					continue
				}
				if f := strings.Fields(string(b)); len(f) > 0 {
					ns, _ := strconv.ParseInt(f[0], 10, 64)
					total += ns
				}
			}
		}
	}
	return total
}

// ksmDir holds the host's KSM knobs and counters.
const ksmDir = "/sys/kernel/mm/ksm"

// ksmPagesToScan is what the benchmark's KSM scans per wake-up (every 20
// ms): 5 times the kernel's default, so that the pods' memory is scanned
// a few times within the settling time.
const ksmPagesToScan = 500

// ksmValue reads one of KSM's numbers (-1 if it cannot).
func ksmValue(name string) int64 {
	b, err := os.ReadFile(ksmDir + "/" + name)
	if err != nil {
		return -1
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// setKSM turns KSM on or off for the benchmark and restores the host's
// settings when it ends. Off also unmerges what was merged (run=2).
func setKSM(b *testing.B, on bool) {
	run, scan := ksmValue("run"), ksmValue("pages_to_scan")
	if run < 0 || scan < 0 {
		b.Fatalf("no KSM on this host (%s)", ksmDir)
	}
	write := func(name string, v int64) {
		if err := os.WriteFile(ksmDir+"/"+name, []byte(strconv.FormatInt(v, 10)), 0o644); err != nil {
			b.Fatalf("KSM %s: %v", name, err)
		}
	}
	b.Cleanup(func() {
		write("pages_to_scan", scan)
		write("run", run)
	})
	if on {
		write("pages_to_scan", ksmPagesToScan)
		write("run", 1)
	} else {
		write("run", 2)
	}
}

// ksmdPid is the PID of the kernel's KSM thread (0 if none).
func ksmdPid() int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "ksmd" {
			return pid
		}
	}
	return 0
}

// perPod formats KiB summed over n pods, per name (a process's, a kind of
// mapping), as MiB per pod.
func perPod(kib map[string]int64, n int) string {
	names := make([]string, 0, len(kib))
	for name := range kib {
		names = append(names, name)
	}
	sort.Strings(names)
	var parts []string
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f MiB", name, float64(kib[name])/1024/float64(n)))
	}
	return strings.Join(parts, ", ")
}

// meminfoGrowth is how much each of the kernel's memory counters that
// explain a drop in MemAvailable grew, per pod: what the pods' processes
// hold (anonymous, shared memory, mapped files) and what the kernel holds
// for them (slab, page tables, stacks, per-CPU data).
func meminfoGrowth(before, after map[string]int64, n int) string {
	grown := map[string]int64{}
	for _, f := range []string{"MemFree", "Cached", "AnonPages", "Shmem", "Mapped", "SReclaimable", "SUnreclaim", "PageTables", "KernelStack", "Percpu", "VmallocUsed"} {
		grown[f] = after[f] - before[f]
	}
	return perPod(grown, n)
}

// qemuPSSByKind sums a QEMU process's PSS (KiB) by what its mappings hold:
// guest RAM (a template's RAM file or a memfd), TCG's translation cache
// (the one anonymous executable mapping), QEMU's own binary, and the rest
// (heap, stacks, other anonymous memory).
func qemuPSSByKind(pid int) map[string]int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil
	}
	sums := map[string]int64{}
	kind := ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			path := ""
			if len(f) >= 6 {
				path = strings.Join(f[5:], " ")
			}
			switch {
			case strings.HasPrefix(path, "/memfd:") || strings.HasSuffix(path, "/ram") || strings.Contains(path, "/ram "):
				kind = "guest RAM"
			case path == "" && strings.Contains(f[1], "x"):
				kind = "translation cache"
			case strings.Contains(path, "qemu-system"):
				kind = "binary"
			default:
				kind = "heap and other"
			}
			continue
		}
		if len(f) >= 2 && f[0] == "Pss:" && kind != "" {
			k, _ := strconv.ParseInt(f[1], 10, 64)
			sums[kind] += k
		}
	}
	return sums
}
