package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// Network tests talk only to addresses on this machine: the pods' addresses
// live in network namespaces the stage1 creates for them, and what a pod
// reaches is the host end of its own network.

// netInfo is an entry of net-info.json as rkt reads it.
type netInfo struct {
	NetName string `json:"netName"`
	NetConf string `json:"netConf"`
	IfName  string `json:"ifName"`
	IP      string `json:"ip"`
	Mask    string `json:"mask"`
	Args    string `json:"args"`
}

func readNetInfo(t *testing.T, p *harness.Pod) []netInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Dir, "net-info.json"))
	if err != nil {
		t.Fatalf("net-info.json: %v", err)
	}
	var infos []netInfo
	if err := json.Unmarshal(b, &infos); err != nil {
		t.Fatalf("net-info.json %q: %v", b, err)
	}
	return infos
}

var countersRE = regexp.MustCompile(`\[\d+:\d+\]`)

// hostNetState is what a pod's networks may change on the host while they
// exist: interfaces, routes, iptables rules, network namespaces and IPAM
// leases. After gc it must be as before the pod.
func hostNetState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	for _, l := range strings.Split(run("ip", "-o", "link", "show"), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			fmt.Fprintf(&b, "link %s\n", f[1])
		}
	}
	b.WriteString("routes:\n" + run("ip", "-4", "route", "show", "table", "all"))
	b.WriteString(run("ip", "-6", "route", "show", "table", "all"))
	// Rules and chains of our own; a built-in table that merely came
	// into existence (empty, default policies) is no leftover.
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		b.WriteString(cmd + ":\n")
		for _, l := range strings.Split(run(cmd), "\n") {
			if strings.HasPrefix(l, "-A ") || (strings.HasPrefix(l, ":") && strings.Contains(l, " - ")) {
				b.WriteString(countersRE.ReplaceAllString(l, "") + "\n")
			}
		}
	}
	netns, _ := os.ReadDir("/var/run/netns")
	for _, e := range netns {
		fmt.Fprintf(&b, "netns %s\n", e.Name())
	}
	// host-local keeps one file per leased address (and its own
	// bookkeeping, which may change).
	leases, _ := filepath.Glob("/var/lib/cni/networks/*/*")
	sort.Strings(leases)
	for _, l := range leases {
		base := filepath.Base(l)
		if base != "lock" && !strings.HasPrefix(base, "last_reserved_ip") {
			fmt.Fprintf(&b, "lease %s\n", l)
		}
	}
	return b.String()
}

// podDiff compares host network states and returns the differences that
// belong to the given pods (lines naming a pod's UUID or address); others
// (another test run's pods on this machine, portmap's chains shared by all
// pods, which it never removes) are only logged.
func podDiff(t *testing.T, before, after string, uuids, ips []string) string {
	t.Helper()
	var markers []*regexp.Regexp
	for _, u := range uuids {
		markers = append(markers, regexp.MustCompile(regexp.QuoteMeta(u)))
	}
	for _, ip := range ips {
		markers = append(markers, regexp.MustCompile(`(^|[^0-9.])`+regexp.QuoteMeta(ip)+`([^0-9]|$)`))
	}
	var ours, others []string
	for _, l := range strings.Split(diffLines(before, after), "\n") {
		if l == "" {
			continue
		}
		mine := false
		for _, m := range markers {
			mine = mine || m.MatchString(l)
		}
		if mine {
			ours = append(ours, l)
		} else {
			others = append(others, l)
		}
	}
	if len(others) > 0 {
		t.Logf("host network changes not of this test's pods:\n%s", strings.Join(others, "\n"))
	}
	return strings.Join(ours, "\n")
}

func diffLines(before, after string) string {
	count := map[string]int{}
	for _, l := range strings.Split(before, "\n") {
		count[l]++
	}
	var d []string
	for _, l := range strings.Split(after, "\n") {
		if count[l] > 0 {
			count[l]--
		} else {
			d = append(d, "+ "+l)
		}
	}
	for l, n := range count {
		for ; n > 0; n-- {
			d = append(d, "- "+l)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

// hostServer serves "from-host" on every address of the host, on a free
// port, for pods to reach.
func hostServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from-host\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// freePort is a TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// hostAddr is an IPv4 address of this host outside the pods' networks.
func hostAddr(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	_, pods, _ := net.ParseCIDR("172.16.0.0/12")
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !pods.Contains(n.IP) {
			return n.IP.String()
		}
	}
	t.Skip("no IPv4 address on this host outside 172.16.0.0/12")
	return ""
}

// httpGet fetches url with retries while the pod's server starts.
func httpGet(url string, within time.Duration) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := c.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b), err
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitOutput waits until the running pod's stdout contains s.
func waitOutput(t *testing.T, run *harness.Running, s string, within time.Duration) string {
	t.Helper()
	var out, errOut string
	if !waitUntil(within, 100*time.Millisecond, func() bool {
		out, errOut = run.Output()
		return strings.Contains(out, s)
	}) {
		t.Fatalf("no %q in the pod's output after %v\nstdout: %s\nstderr: %s", s, within, out, errOut)
	}
	return out
}

// webApp reports what its network looks like, fetches from the host at its
// gateway (HOSTPORT), then serves HTTP on port 80.
func webApp(name string, hostPort int) harness.AppSpec {
	spec := sh(name, fmt.Sprintf(`
ip -o -4 addr show dev eth0 | awk '{print "addr", $4}'
ip route | sed 's/^/route /'
echo "links $(ls /sys/class/net | tr '\n' ' ')"
gw=$(ip route | awk '/^default/ {print $3}')
[ -z "$gw" ] && gw=$(ip route | awk '/scope link/ && $1 !~ /\// {print $1; exit}')
# (busybox-static's wget crashes on these hosts; nc does the same job.)
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 nc "$gw" %d 2>&1 | tail -n 1 | sed "s/^/got /"
echo "resolv: $(cat /etc/resolv.conf 2>/dev/null | grep -c nameserver)"
mkdir -p /www && echo pod-says-hi > /www/index.html
echo serving
exec httpd -f -p 80 -h /www`, hostPort))
	spec.Ports = []types.Port{{Name: "http", Protocol: "tcp", Port: 80}}
	return spec
}

// webPod is a pod on the default network running webApp, its port 80
// forwarded from the host's port Fwd.
type webPod struct {
	S   *harness.Stage0
	P   *harness.Pod
	Run *harness.Running
	Fwd int
	// Out is the app's output up to "serving".
	Out string
}

// startWebPod starts a webPod reaching hostServer, and waits until it
// serves.
func startWebPod(t *testing.T) webPod {
	t.Helper()
	port := hostServer(t)
	s := harness.NewStage0(t)
	fwd := freePort(t)
	p := s.Prepare(t, harness.PodOpts{Ports: []types.ExposedPort{{Name: "http", HostPort: uint(fwd)}}},
		harness.BuildACI(t, webApp("web", port)))
	run := p.Start(t, harness.RunOpts{})
	out := waitOutput(t, run, "serving", 2*time.Minute)
	return webPod{S: s, P: p, Run: run, Fwd: fwd, Out: out}
}

// TestNetDefault: the default network (ptp, 172.16.28.0/24, masquerade):
// the app has an address and a default route before it starts, reaches the
// host, serves HTTP at its address; net-info.json says so; run's exit and gc
// leave the host as before.
func TestNetDefault(t *testing.T) {
	before := hostNetState(t)
	w := startWebPod(t)
	p, out := w.P, w.Out
	if !strings.Contains(out, "got from-host") {
		t.Errorf("the pod did not reach the host:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^route default via 172\.16\.28\.1 dev eth0`).MatchString(out) {
		t.Errorf("no default route through the host:\n%s", out)
	}
	infos := readNetInfo(t, p)
	if len(infos) != 1 || infos[0].NetName != "default" || infos[0].IfName != "eth0" || infos[0].Mask != "255.255.255.0" {
		t.Fatalf("net-info.json: %+v", infos)
	}
	ip := net.ParseIP(infos[0].IP)
	if ip == nil || !(&net.IPNet{IP: net.IPv4(172, 16, 28, 0), Mask: net.CIDRMask(24, 32)}).Contains(ip) {
		t.Fatalf("pod IP %q not in 172.16.28.0/24", infos[0].IP)
	}
	if !strings.Contains(out, "addr "+ip.String()+"/24") {
		t.Errorf("the guest's eth0 does not have %s/24:\n%s", ip, out)
	}
	body, err := httpGet("http://"+ip.String()+"/", 30*time.Second)
	if err != nil || body != "pod-says-hi\n" {
		t.Errorf("GET http://%s/ = %q, %v", ip, body, err)
	}
	// The forwarded port, at the host's own address.
	hostURL := fmt.Sprintf("http://%s/", net.JoinHostPort(hostAddr(t), fmt.Sprint(w.Fwd)))
	if body, err := httpGet(hostURL, 30*time.Second); err != nil || body != "pod-says-hi\n" {
		t.Errorf("GET %s (forwarded to the pod) = %q, %v", hostURL, body, err)
	}
	stopGCAndCompare(t, w.S, p, w.Run, before, ip.String())
}

// TestNetPortForwardFromNetns: a forwarded port is reached from another
// network namespace, standing for another machine (joined to the host by a
// veth pair of its own): at the host's address on that link and at the
// host's main address.
func TestNetPortForwardFromNetns(t *testing.T) {
	peer := newPeerNetns(t, 251)
	before := hostNetState(t)
	w := startWebPod(t)
	fwd := w.Fwd
	infos := readNetInfo(t, w.P)
	if len(infos) != 1 || infos[0].IP == "" {
		t.Fatalf("net-info.json: %+v", infos)
	}
	for _, addr := range []string{peer.HostIP, hostAddr(t)} {
		// (Retried: the server may still be starting. A failed
		// attempt's complaint must not end up in the output.)
		script := fmt.Sprintf(`for i in 1 2 3 4 5 6 7 8 9 10; do
	out=$(printf 'GET / HTTP/1.0\r\n\r\n' | %[1]s timeout 5 %[1]s nc %[2]s %[3]d 2>/dev/null | %[1]s tail -n 1)
	[ -n "$out" ] && { echo "$out"; exit 0; }
	%[1]s sleep 1
done; exit 1`, harness.BusyboxPath, addr, fwd)
		out, err := peer.Exec(time.Minute, harness.BusyboxPath, "sh", "-c", script)
		if err != nil || out != "pod-says-hi\n" {
			t.Errorf("from namespace %s to %s:%d (forwarded to the pod): %q, %v", peer.Name, addr, fwd, out, err)
		}
	}
	// And on the host itself at 127.0.0.1, as rkt's container flavor
	// allowed (route_localnet on the pod's host interface and a
	// masquerade of 127.0.0.1, both done by portmap with snat).
	localURL := fmt.Sprintf("http://127.0.0.1:%d/", fwd)
	if body, err := httpGet(localURL, 30*time.Second); err != nil || body != "pod-says-hi\n" {
		t.Errorf("GET %s (forwarded to the pod) = %q, %v", localURL, body, err)
	}
	stopGCAndCompare(t, w.S, w.P, w.Run, before, infos[0].IP)
}

// TestNetNone: --net=none gives loopback only and an empty net-info.json.
func TestNetNone(t *testing.T) {
	// (The kernel's sit0 exists, down, in every guest.)
	p, r := runPod(t, harness.RunOpts{Net: "none"}, sh("app", "ls /sys/class/net | grep -v '^sit0$'; ip -o link show up | awk -F': ' '{print \"up\", $2}'; ip -o -4 addr show lo | awk '{print $4}'"))
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	if r.Stdout != "lo\nup lo\n127.0.0.1/8\n" {
		t.Errorf("want loopback only, up: %q", r.Stdout)
	}
	if infos := readNetInfo(t, p); len(infos) != 0 {
		t.Errorf("net-info.json: %+v", infos)
	}
}

// TestNetGCAfterKill: a run killed while its network is set up (or the VM
// boots) leaves everything to gc, which releases it all; twice is fine.
func TestNetGCAfterKill(t *testing.T) {
	before := hostNetState(t)
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app", "sleep 300")))
	run := p.Start(t, harness.RunOpts{AllowStrays: true})
	if !waitUntil(time.Minute, 20*time.Millisecond, func() bool {
		_, err := os.Stat(filepath.Join(p.Dir, "net-info.json"))
		return err == nil
	}) {
		t.Fatal("no net-info.json within a minute")
	}
	infos := readNetInfo(t, p)
	if len(infos) != 1 || infos[0].IP == "" {
		t.Fatalf("net-info.json: %+v", infos)
	}
	if st := hostNetState(t); !strings.Contains(st, p.UUID) || !strings.Contains(st, infos[0].IP) {
		t.Errorf("the pod's network is not visible in the host state:\n%s", st)
	}
	syscall.Kill(run.Pid, syscall.SIGKILL)
	run.Wait()
	if _, err := os.Stat("/var/run/netns/stage1-" + p.UUID); err != nil {
		t.Errorf("the killed run's namespace should be there for gc: %v", err)
	}
	for i := 0; i < 2; i++ {
		if code, stderr := s.GC(t, p, harness.GCOpts{Keep: true}); code != 0 {
			t.Fatalf("gc #%d: %d %s", i+1, code, stderr)
		}
	}
	assertNoLeaks(t, p)
	if d := podDiff(t, before, hostNetState(t), []string{p.UUID}, []string{infos[0].IP}); d != "" {
		t.Errorf("host network state changed by a killed run + gc:\n%s", d)
	}
}

// TestNetDefaultRestricted: the restricted network reaches the host end of
// its own link and nothing else (no default route, no masquerade).
func TestNetDefaultRestricted(t *testing.T) {
	port := hostServer(t)
	host := hostAddr(t)
	s := harness.NewStage0(t)
	spec := webApp("web", port)
	// After serving is up, try the host's other address: unreachable.
	p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, spec))
	run := p.Start(t, harness.RunOpts{Net: "default-restricted"})
	out := waitOutput(t, run, "serving", 2*time.Minute)
	if !strings.Contains(out, "got from-host") {
		t.Errorf("the pod did not reach the host end of its network:\n%s", out)
	}
	if strings.Contains(out, "route default") {
		t.Errorf("default-restricted has a default route:\n%s", out)
	}
	infos := readNetInfo(t, p)
	if len(infos) != 1 || infos[0].NetName != "default-restricted" || !strings.HasPrefix(infos[0].IP, "172.31.") {
		t.Errorf("net-info.json: %+v", infos)
	}
	r := p.Enter(t, harness.EnterOpts{}, "/bin/sh", "-c", fmt.Sprintf("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc %s %d; echo rc=$?", host, port))
	if !strings.Contains(r.Stdout, "rc=") || strings.Contains(r.Stdout, "rc=0") {
		t.Errorf("enter: the probe did not run or did not fail: %q %s", r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout, "from-host") {
		t.Errorf("default-restricted reached %s beyond the host end of its link: %q", host, r.Stdout)
	}
	p.Stop(t, harness.StopOpts{})
	run.Wait()
	if code, stderr := s.GC(t, p); code != 0 {
		t.Errorf("gc: %d %s", code, stderr)
	}
}

// TestNetBridgeTwoPods: a user network from <local-config>/net.d (bridge),
// a fixed address through --net=name:IP=..., two pods on it reaching each
// other; both also get default-restricted, as rkt gives every pod on
// named networks.
func TestNetBridgeTwoPods(t *testing.T) {
	const bridge = "s1test-br0"
	conf := t.TempDir()
	os.MkdirAll(filepath.Join(conf, "net.d"), 0o755)
	os.WriteFile(filepath.Join(conf, "net.d", "10-podbr.conf"), []byte(`{
	"cniVersion": "1.0.0", "name": "podbr", "type": "bridge", "bridge": "`+bridge+`",
	"isGateway": true, "ipMasq": false,
	"ipam": {"type": "host-local", "subnet": "10.199.77.0/24"}
}`), 0o644)
	t.Cleanup(func() {
		// The bridge plugin never removes its bridge (as with rkt).
		exec.Command("ip", "link", "del", bridge).Run()
	})
	s := harness.NewStage0(t)
	server := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, webApp("web", 9)))
	srun := server.Start(t, harness.RunOpts{Net: "podbr:IP=10.199.77.50", LocalConfig: conf})
	waitOutput(t, srun, "serving", 2*time.Minute)
	infos := readNetInfo(t, server)
	if len(infos) != 2 || infos[0].NetName != "podbr" || infos[0].IP != "10.199.77.50" || infos[0].Args != "IP=10.199.77.50" ||
		infos[1].NetName != "default-restricted" || infos[1].IfName != "eth1" {
		t.Errorf("net-info.json: %+v", infos)
	}
	client := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t,
		sh("client", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 10 nc 10.199.77.50 80 | tail -n 1")))
	r := client.Run(t, harness.RunOpts{Net: "podbr", LocalConfig: conf})
	if r.ExitCode != 0 || r.Stdout != "pod-says-hi\n" {
		t.Errorf("the second pod did not reach the first: exit %d, stdout %q, stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	server.Stop(t, harness.StopOpts{})
	srun.Wait()
	for _, p := range []*harness.Pod{server, client} {
		if code, stderr := s.GC(t, p, harness.GCOpts{LocalConfig: conf}); code != 0 {
			t.Errorf("gc: %d %s", code, stderr)
		}
	}
	if leases, _ := filepath.Glob("/var/lib/cni/networks/podbr/10.*"); len(leases) > 0 {
		t.Errorf("leases left: %v", leases)
	}
}

// TestNetDNSFromStage0: --dns and --hosts-entry (stage0 writes
// etc/rkt-resolv.conf and etc/rkt-hosts, run gets --dns-conf-mode) reach
// the apps' /etc/resolv.conf and /etc/hosts.
func TestNetDNSFromStage0(t *testing.T) {
	_, r := runPod(t, harness.RunOpts{Net: "none", DNS: []string{"10.1.2.3"}, DNSSearch: []string{"example.test"},
		HostsEntries: []string{"10.9.9.9=db"}}, sh("app", "cat /etc/resolv.conf /etc/hosts"))
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	for _, want := range []string{"nameserver 10.1.2.3\n", "search example.test\n", "10.9.9.9 db\n", "127.0.0.1 localhost"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("no %q in the app's files:\n%s", want, r.Stdout)
		}
	}
}

// stopGCAndCompare stops a running pod, collects it, and checks that the
// host's network state is what it was before the pod (apart from what names
// other pods).
func stopGCAndCompare(t *testing.T, s *harness.Stage0, p *harness.Pod, run *harness.Running, before, podIP string) {
	t.Helper()
	if st := p.Stop(t, harness.StopOpts{}); st.ExitCode != 0 {
		t.Errorf("stop: %d %s", st.ExitCode, st.Stderr)
	}
	run.Wait()
	if code, stderr := s.GC(t, p); code != 0 {
		t.Errorf("gc: %d %s", code, stderr)
	}
	assertNoLeaks(t, p)
	if d := podDiff(t, before, hostNetState(t), []string{p.UUID}, []string{podIP}); d != "" {
		t.Errorf("host network state changed by run+gc:\n%s", d)
	}
}
