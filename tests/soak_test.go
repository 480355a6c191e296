package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// soakCyclesEnv sets how many run-and-gc cycles TestSoak makes (`make
// soak`); without it the test is skipped.
const soakCyclesEnv = "STAGE1_SOAK_CYCLES"

// hostState is what a pod could leave behind on the host.
type hostState struct {
	Procs    int      // processes of ours: QEMU, virtiofsd, the jailer, anything naming a pod
	Mounts   int      // this process's mount table
	Netns    []string // /var/run/netns
	Links    int      // network interfaces of the host namespace
	Rules    int      // iptables rules (all tables)
	Leases   int      // CNI host-local IP leases
	Cgroups  []string // the pods' memory cgroups
	OwnFDs   int      // this (long-lived) process's open descriptors
	MemAvail int      // MemAvailable, KiB: compared with a tolerance
}

func snapshot(t testing.TB, stage0Dir string) hostState {
	t.Helper()
	var st hostState
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range procs {
		b, _ := os.ReadFile(c)
		switch strings.TrimSpace(string(b)) {
		case "qemu-system-x86", "virtiofsd", "jailer":
			// A zombie holds nothing but its PID until init reaps it.
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(c))); err == nil && harness.ProcessState(pid) != "Z" {
				st.Procs++
			}
		}
	}
	st.Procs += len(harness.ProcessesMentioning(stage0Dir))
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		st.Mounts = strings.Count(string(b), "\n")
	}
	ents, _ := os.ReadDir("/var/run/netns")
	for _, e := range ents {
		st.Netns = append(st.Netns, e.Name())
	}
	links, _ := os.ReadDir("/sys/class/net")
	st.Links = len(links)
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-A ") {
			st.Rules++
		}
	}
	leases, _ := filepath.Glob("/var/lib/cni/networks/*/*")
	for _, l := range leases {
		if b := filepath.Base(l); b != "lock" && !strings.HasPrefix(b, "last_reserved_ip") {
			st.Leases++
		}
	}
	st.Cgroups = harness.Stage1Cgroups()
	fds, _ := os.ReadDir("/proc/self/fd")
	st.OwnFDs = len(fds)
	st.MemAvail = memAvailable(t)
	return st
}

func memAvailable(t testing.TB) int {
	return int(meminfo(t)["MemAvailable"])
}

// meminfo reads /proc/meminfo: each field's value in KiB (or pages, for
// the few counted so).
func meminfo(t testing.TB) map[string]int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if fields := strings.Fields(v); ok && len(fields) > 0 {
			m[name], _ = strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return m
}

// TestSoak runs a pod on the default network and collects it, again and
// again, and checks that the host is back where it started: no process,
// mount, network namespace, link, iptables rule or IP lease left, no
// descriptor leaked by the harness, and free memory back within 64 MiB.
func TestSoak(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(soakCyclesEnv))
	if n <= 0 {
		t.Skipf("set %s to run the soak (make soak)", soakCyclesEnv)
	}
	s := harness.NewStage0(t)
	cycle := func(i int) {
		p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app", fmt.Sprintf("echo cycle %d", i))))
		r := p.Run(t, harness.RunOpts{})
		if r.ExitCode != 0 || r.Stdout != fmt.Sprintf("cycle %d\n", i) {
			t.Fatalf("cycle %d: exit %d, stdout %q\nstderr:\n%s", i, r.ExitCode, r.Stdout, r.Stderr)
		}
		if code, stderr := s.GC(t, p); code != 0 {
			t.Fatalf("cycle %d: gc exited %d: %s", i, code, stderr)
		}
	}
	// One cycle first: the first pod creates what stays for all (the
	// network's directories and chains, the image in the tree store).
	cycle(0)
	before := snapshot(t, s.Dir)
	for i := 1; i <= n; i++ {
		cycle(i)
		if i%25 == 0 {
			t.Logf("cycle %d: %+v", i, snapshot(t, s.Dir))
		}
	}
	after := snapshot(t, s.Dir)
	t.Logf("before: %+v", before)
	t.Logf("after %d cycles: %+v", n, after)
	memDrop := before.MemAvail - after.MemAvail
	before.MemAvail, after.MemAvail = 0, 0
	if !reflect.DeepEqual(before, after) {
		t.Errorf("the host changed over %d cycles:\nbefore %+v\nafter  %+v", n, before, after)
	}
	if memDrop > 64<<10 {
		t.Errorf("free memory fell by %d MiB over %d cycles", memDrop>>10, n)
	}
}
