package tests

// Networking benchmarks (issue 6, docs/benchmarks.md) and the helpers they
// share with the network tests: a network namespace of the test's own,
// joined to the host by a veth pair, standing for another machine.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// peerNetns is a network namespace the test created, joined to the host by
// a veth pair: HostIP on the host end, PeerIP (default route via HostIP)
// inside.
type peerNetns struct {
	Name, HostIf   string
	HostIP, PeerIP string
}

var peerSeq atomic.Int32

// newPeerNetns creates the namespace and the veth pair in 198.18.<net>.0/30
// (RFC 2544's benchmarking range, used by nothing on these hosts) and
// removes both at the end of the test, failing it if either is left.
func newPeerNetns(t testing.TB, subnet int) *peerNetns {
	t.Helper()
	n := peerSeq.Add(1)
	p := &peerNetns{
		Name:   fmt.Sprintf("s1peer-%d-%d", os.Getpid(), n),
		HostIf: fmt.Sprintf("s1p%d-%d", os.Getpid()%1000000, n),
		HostIP: fmt.Sprintf("198.18.%d.1", subnet),
		PeerIP: fmt.Sprintf("198.18.%d.2", subnet),
	}
	if len(p.HostIf) > 15 {
		t.Fatalf("interface name %q too long", p.HostIf)
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", p.Name)
	t.Cleanup(func() { p.remove(t) })
	ip("link", "add", p.HostIf, "type", "veth", "peer", "name", "eth0", "netns", p.Name)
	// No IPv6 link-local addresses: they would appear after the test took
	// its picture of the host's routes.
	ip("link", "set", p.HostIf, "addrgenmode", "none")
	ip("-n", p.Name, "link", "set", "eth0", "addrgenmode", "none")
	ip("addr", "add", p.HostIP+"/30", "dev", p.HostIf)
	ip("link", "set", p.HostIf, "up")
	ip("-n", p.Name, "addr", "add", p.PeerIP+"/30", "dev", "eth0")
	ip("-n", p.Name, "link", "set", "lo", "up")
	ip("-n", p.Name, "link", "set", "eth0", "up")
	ip("-n", p.Name, "route", "add", "default", "via", p.HostIP)
	return p
}

// remove deletes the namespace (its end of the veth pair goes with it, and
// so does the host end) and checks that nothing of it remains.
func (p *peerNetns) remove(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "del", p.Name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v\n%s", p.Name, err, out)
	}
	// The host end disappears once the kernel has torn the pair down.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := net.InterfaceByName(p.HostIf)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			exec.Command("ip", "link", "del", p.HostIf).Run()
			t.Errorf("LEAK: veth %s outlived its namespace; deleted it", p.HostIf)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat("/var/run/netns/" + p.Name); err == nil {
		t.Errorf("LEAK: network namespace %s still exists", p.Name)
	}
}

// Exec runs a command inside the namespace and returns its combined output.
func (p *peerNetns) Exec(timeout time.Duration, name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.Name, name}, args...)...)
	return runBounded(cmd, timeout)
}

// runBounded runs cmd in its own process group and kills that group (only
// it) if cmd outlives timeout.
func runBounded(cmd *exec.Cmd, timeout time.Duration) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	timer := time.AfterFunc(timeout, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err := cmd.Wait()
	if !timer.Stop() {
		err = fmt.Errorf("killed after %v: %w", timeout, err)
	}
	return out.String(), err
}

// iperf3Server runs `iperf3 -s` on the host, on every address, for the
// length of the test; it is ended by its PID at cleanup.
func iperf3Server(t testing.TB) int {
	t.Helper()
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("iperf3 not installed (tools/deps.sh)")
	}
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("iperf3", "-s", "-p", strconv.Itoa(port))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(pid, syscall.SIGKILL)
			<-done
		}
		harness.MustBeGone(t, "iperf3 server", pid)
		if t.Failed() {
			t.Logf("iperf3 server output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			// iperf3 takes that probe for a client that left; give it
			// a moment to be back to listening.
			time.Sleep(200 * time.Millisecond)
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("iperf3 -s -p %d: not listening after 10s", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// iperf3Mbps reads the receiver's throughput from `iperf3 -J` output.
func iperf3Mbps(out string) (float64, error) {
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	i := strings.Index(out, "{")
	if i < 0 {
		return 0, fmt.Errorf("no JSON in iperf3 output %q", out)
	}
	if err := json.Unmarshal([]byte(out[i:]), &r); err != nil {
		return 0, fmt.Errorf("iperf3 output: %v\n%s", err, out)
	}
	if r.Error != "" || r.End.SumReceived.BitsPerSecond == 0 {
		return 0, fmt.Errorf("iperf3: %q\n%s", r.Error, out)
	}
	return r.End.SumReceived.BitsPerSecond / 1e6, nil
}

var pingRTT = regexp.MustCompile(`rtt min/avg/max/mdev = ([0-9.]+)/([0-9.]+)/([0-9.]+)/`)

// pingAvgMs reads the average round trip from iputils ping's summary.
func pingAvgMs(out string) (float64, error) {
	m := pingRTT.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no rtt summary in ping output:\n%s", out)
	}
	return strconv.ParseFloat(m[2], 64)
}

// Bounded traffic per measurement.
const (
	iperfSeconds = "3"
	pingCount    = "20"
	pingInterval = "0.05"
)

// BenchmarkNetSetup measures the host side of the default network in the
// run entry point (network_setup_ms of timings.json: namespace, CNI ADD of
// ptp with host-local and masquerade, tap, tc redirects, files), and the
// whole host setup (run exec -> QEMU spawned) with the default network and
// with --net=none.
func BenchmarkNetSetup(b *testing.B) {
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRuns(); r++ {
			for _, netw := range []string{"default", "none"} {
				st := harness.NewStage0(b)
				p := st.Prepare(b, harness.PodOpts{}, harness.BuildACI(b, harness.AppSpec{Name: "true", Exec: []string{"/bin/true"}}))
				res := p.Run(b, harness.RunOpts{Net: netw})
				if res.ExitCode != 0 {
					b.Fatalf("run --net=%s: %d %s", netw, res.ExitCode, res.Stderr)
				}
				t := readTimings(b, p)
				s["network_setup_ms_"+netw] = append(s["network_setup_ms_"+netw], t.NetworkSetupMs)
				s["host_setup_ms_"+netw] = append(s["host_setup_ms_"+netw], t.HostSetupMs)
				if code, stderr := st.GC(b, p); code != 0 {
					b.Fatalf("gc: %d %s", code, stderr)
				}
			}
		}
	}
	s.report(b)
}

// iperfApp is a pod app with Debian's iperf3 and iputils ping (and their
// libraries) next to busybox, idle until entered.
func iperfApp() harness.AppSpec {
	spec := sh("net", "sleep 3600")
	spec.HostBinaries = []string{"/usr/bin/iperf3", "/usr/bin/ping"}
	return spec
}

// waitAppDev waits until enter sees the app's /dev. Right after the pod
// reports ready, enter may find no process of the app in its own mount
// namespace yet and run in the bare rootfs (no /dev, /proc), where iperf3
// fails for want of /dev/urandom.
func waitAppDev(b testing.TB, p *harness.Pod) {
	b.Helper()
	var r harness.RunResult
	if !waitUntil(30*time.Second, 100*time.Millisecond, func() bool {
		r = p.Enter(b, harness.EnterOpts{}, "/bin/test", "-e", "/dev/urandom")
		return r.ExitCode == 0
	}) {
		b.Fatalf("enter sees no /dev/urandom in the app: %d %s", r.ExitCode, r.Stderr)
	}
}

// BenchmarkNetThroughput measures TCP throughput (iperf3, -t 3, both
// directions) and round-trip latency (ping, 20 at 50 ms) between the host
// and a pod on the default network (the client in the guest, under TCG),
// and, as the reference, between the host and a network namespace over a
// plain veth pair (the client in the namespace).
func BenchmarkNetThroughput(b *testing.B) {
	if _, err := exec.LookPath("ping"); err != nil {
		b.Skip("ping not installed (tools/deps.sh)")
	}
	port := strconv.Itoa(iperf3Server(b))
	peer := newPeerNetns(b, 250)

	st := harness.NewStage0(b)
	p := st.Prepare(b, harness.PodOpts{}, harness.BuildACI(b, iperfApp()))
	run := p.Start(b, harness.RunOpts{})
	defer func() {
		syscall.Kill(run.Pid, syscall.SIGTERM)
		run.Wait()
		if code, stderr := st.GC(b, p); code != 0 {
			b.Errorf("gc: %d %s", code, stderr)
		}
	}()
	p.WaitReady(b, readyTimeout)
	waitAppDev(b, p)
	gwOut := p.Enter(b, harness.EnterOpts{}, "/bin/sh", "-c", "ip route | awk '/^default/ {print $3}'")
	gw := strings.TrimSpace(gwOut.Stdout)
	if net.ParseIP(gw) == nil {
		b.Fatalf("the pod's gateway: %q %s", gwOut.Stdout, gwOut.Stderr)
	}

	// iperf3 keeps its buffer in an unlinked temporary file it then
	// truncates; on the app's 9p rootfs ftruncate of an unlinked file fails
	// (ENOENT), so the guest's iperf3 uses the tmpfs /dev/shm.
	inGuest := func(cmd ...string) (string, error) {
		cmd = append([]string{"/bin/sh", "-c", `TMPDIR=/dev/shm exec "$@"`, "sh"}, cmd...)
		r := p.Enter(b, harness.EnterOpts{Timeout: time.Minute}, cmd...)
		if r.ExitCode != 0 {
			return r.Stdout + r.Stderr, fmt.Errorf("exit %d", r.ExitCode)
		}
		return r.Stdout, nil
	}
	inPeer := func(cmd ...string) (string, error) { return peer.Exec(time.Minute, cmd[0], cmd[1:]...) }
	results := samples{}
	measure := func(where string, do func(...string) (string, error), host string) {
		for _, dir := range []struct{ name, flag string }{{"to_host", ""}, {"from_host", "-R"}} {
			args := []string{"/usr/bin/iperf3", "-c", host, "-p", port, "-t", iperfSeconds, "-J"}
			if dir.flag != "" {
				args = append(args, dir.flag)
			}
			out, err := do(args...)
			if err != nil {
				b.Fatalf("%s: %v: %v\n%s", where, args, err, out)
			}
			mbps, err := iperf3Mbps(out)
			if err != nil {
				b.Fatalf("%s: %v", where, err)
			}
			k := where + "_tcp_" + dir.name + "_Mbps"
			results[k] = append(results[k], mbps)
		}
		out, err := do("/usr/bin/ping", "-n", "-q", "-c", pingCount, "-i", pingInterval, host)
		if err != nil {
			b.Fatalf("%s: ping: %v\n%s", where, err, out)
		}
		rtt, err := pingAvgMs(out)
		if err != nil {
			b.Fatalf("%s: %v", where, err)
		}
		results[where+"_ping_rtt_us"] = append(results[where+"_ping_rtt_us"], rtt*1000)
	}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRuns(); r++ {
			measure("guest", inGuest, gw)
			measure("veth_netns", inPeer, peer.HostIP)
		}
	}
	results.report(b)
}
