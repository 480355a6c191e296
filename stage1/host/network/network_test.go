package network

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

func nolog(string, ...any) {}

func TestParseNetList(t *testing.T) {
	reqs, err := ParseNetList([]string{"default", "br:IP=10.1.2.3;X=y"})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[1].Name != "br" || reqs[1].Args != "IP=10.1.2.3;X=y" {
		t.Errorf("%+v", reqs)
	}
	for _, bad := range [][]string{{"none", "default"}, {"a", "a"}, {":IP=1"}} {
		if _, err := ParseNetList(bad); err == nil {
			t.Errorf("ParseNetList(%q) accepted", bad)
		}
	}
	if r, _ := ParseNetList([]string{"none"}); !IsNone(r) {
		t.Error("none is not none")
	}
}

func writeConf(t *testing.T, dir, file, body string) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "net.d"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "net.d", file), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func names(nets []Net) string {
	var s []string
	for _, n := range nets {
		s = append(s, n.Name)
	}
	return strings.Join(s, ",")
}

func TestLoadNetsRktRules(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, "10-a.conf", `{"name": "a", "type": "bridge"}`)
	writeConf(t, dir, "20-a.conf", `{"name": "a", "type": "ptp"}`) // ignored: a is defined
	writeConf(t, dir, "30-b.conf", `{"name": "b", "type": "macvlan", "ipMasq": true}`)
	writeConf(t, dir, "40-c.json", `{"name": "c", "type": "ptp"}`) // not .conf
	load := func(elems ...string) ([]Net, error) {
		reqs, err := ParseNetList(elems)
		if err != nil {
			t.Fatal(err)
		}
		return LoadNets(dir, reqs, nolog)
	}
	for _, tt := range []struct {
		net  []string
		want string
	}{
		{[]string{"default"}, "default"},
		{[]string{"default-restricted"}, "default-restricted"},
		{[]string{"a"}, "a,default-restricted"},
		{[]string{"b:IP=1.2.3.4", "default"}, "b,default"},
		{[]string{"all"}, "a,b,default"},
		{[]string{"none"}, ""},
	} {
		nets, err := load(tt.net...)
		if err != nil {
			t.Errorf("%v: %v", tt.net, err)
			continue
		}
		if got := names(nets); got != tt.want {
			t.Errorf("--net=%v loads %q, want %q", tt.net, got, tt.want)
		}
	}
	nets, _ := load("a")
	if nets[0].Type != "bridge" || nets[0].File != "10-a.conf" {
		t.Errorf("first file naming a network wins: %+v", nets[0])
	}
	nets, _ = load("b:IP=1.2.3.4", "default")
	if nets[0].Args != "IP=1.2.3.4" || nets[1].Args != "" {
		t.Errorf("args: %+v", nets)
	}
	if forwardable(nets) != 0 {
		t.Error("ports go to the first masquerading network")
	}
	if _, err := load("c"); !errors.Is(err, ErrNetworksNotFound) {
		t.Errorf("missing network: %v", err)
	}
	// A user's default overrides the built-in one.
	writeConf(t, dir, "50-default.conf", `{"name": "default", "type": "bridge"}`)
	nets, _ = load("default")
	if len(nets) != 1 || nets[0].Type != "bridge" {
		t.Errorf("override: %+v", nets)
	}
}

func TestBuiltinConfs(t *testing.T) {
	for _, c := range [][]byte{defaultConf, defaultRestrictedConf} {
		var m map[string]any
		if err := json.Unmarshal(c, &m); err != nil {
			t.Fatal(err)
		}
		if m["type"] != "ptp" {
			t.Errorf("%s", c)
		}
	}
	if !strings.Contains(string(defaultConf), "172.16.28.0/24") || !strings.Contains(string(defaultConf), `"ipMasq": true`) {
		t.Error("default: ptp 172.16.28.0/24 with masquerade")
	}
	if !strings.Contains(string(defaultRestrictedConf), `"ipMasq": false`) || strings.Contains(string(defaultRestrictedConf), "0.0.0.0/0") {
		t.Error("default-restricted: no masquerade, no default route")
	}
}

func TestConfList(t *testing.T) {
	b, err := confList(json.RawMessage(`{"name": "x", "type": "ptp"}`), portmapConf)
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if l.CNIVersion != "0.3.1" || l.Name != "x" || len(l.Plugins) != 2 || l.Plugins[1]["type"] != "portmap" {
		t.Errorf("%s", b)
	}
	b, _ = confList(json.RawMessage(`{"cniVersion": "1.0.0", "name": "x", "type": "ptp"}`))
	if !strings.Contains(string(b), `"cniVersion":"1.0.0"`) {
		t.Errorf("%s", b)
	}
}

func TestPortMappings(t *testing.T) {
	pm := &schema.PodManifest{
		Apps: schema.AppList{{Name: "web", App: &types.App{Ports: []types.Port{{Name: "http", Protocol: "tcp", Port: 80}, {Name: "dns", Protocol: "udp", Port: 53, Count: 2}}}}},
		Ports: []types.ExposedPort{
			{Name: "http", HostPort: 8080},
			{Name: "dns", HostPort: 5353, HostIP: net.ParseIP("127.0.0.1")},
		},
	}
	m, err := PortMappings(pm)
	if err != nil {
		t.Fatal(err)
	}
	want := []PortMapping{{8080, 80, "tcp", ""}, {5353, 53, "udp", "127.0.0.1"}, {5354, 54, "udp", "127.0.0.1"}}
	if len(m) != len(want) {
		t.Fatalf("%+v", m)
	}
	for i := range want {
		if m[i] != want[i] {
			t.Errorf("mapping %d: %+v, want %+v", i, m[i], want[i])
		}
	}
	pm.Ports = append(pm.Ports, types.ExposedPort{Name: "nope", HostPort: 1})
	if _, err := PortMappings(pm); err == nil {
		t.Error("unknown port name accepted")
	}
}

func TestDNSFiles(t *testing.T) {
	root := t.TempDir()
	dns := &cnitypes.DNS{Nameservers: []string{"10.0.0.53"}, Search: []string{"example.test"}}
	out, err := dnsFiles(dnsInput{stage1Rootfs: root, resolvMode: "default", hostsMode: "default", cniDNS: dns, cniNet: "n1", hostname: "h1", podIP: "10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.resolv, "nameserver 10.0.0.53\n") || !strings.Contains(out.resolv, "search example.test\n") {
		t.Errorf("resolv from CNI: %q", out.resolv)
	}
	if b, _ := os.ReadFile(filepath.Join(root, RktResolvConf)); string(b) != out.resolv {
		t.Errorf("etc/rkt-resolv.conf not written as rkt's stage1 does: %q", b)
	}
	if out.hosts != "" || !strings.Contains(out.hostsFallback, "10.0.0.7 h1\n") || !strings.Contains(out.hostsFallback, "127.0.0.1 localhost") {
		t.Errorf("hosts: %+v", out)
	}
	// stage0's files win; none leaves the apps alone.
	os.WriteFile(filepath.Join(root, RktResolvConf), []byte("nameserver 1.1.1.1\n"), 0o644)
	os.WriteFile(filepath.Join(root, RktHosts), []byte("1.2.3.4 x\n"), 0o644)
	out, err = dnsFiles(dnsInput{stage1Rootfs: root, resolvMode: "stage0", hostsMode: "stage0", cniDNS: dns})
	if err != nil || out.resolv != "nameserver 1.1.1.1\n" || out.hosts != "1.2.3.4 x\n" {
		t.Errorf("stage0: %+v %v", out, err)
	}
	out, err = dnsFiles(dnsInput{stage1Rootfs: root, resolvMode: "none", hostsMode: "default", cniDNS: dns})
	if err != nil || out.resolv != "" {
		t.Errorf("none: %+v %v", out, err)
	}
	if _, err := dnsFiles(dnsInput{stage1Rootfs: t.TempDir(), resolvMode: "stage0", hostsMode: "default"}); err == nil {
		t.Error("stage0 without the file accepted")
	}
}

func TestWriteInRootStaysInside(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	target := filepath.Join(outside, "victim")
	os.WriteFile(target, []byte("keep"), 0o644)
	// An app's /etc/resolv.conf pointing at a host path must not be
	// followed: it is replaced.
	os.Symlink(target, filepath.Join(root, "etc", "resolv.conf"))
	if err := writeInRoot(root, "resolv.conf", "nameserver 9.9.9.9\n", true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Fatal("wrote through an app's symlink onto the host")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc", "resolv.conf")); string(b) != "nameserver 9.9.9.9\n" {
		t.Errorf("resolv.conf %q", b)
	}
	// Without replace an app's own file stays.
	os.WriteFile(filepath.Join(root, "etc", "hosts"), []byte("mine"), 0o644)
	writeInRoot(root, "hosts", "fallback", false)
	if b, _ := os.ReadFile(filepath.Join(root, "etc", "hosts")); string(b) != "mine" {
		t.Errorf("app's hosts replaced: %q", b)
	}
	// An /etc that is a symlink out of the rootfs resolves inside it.
	root2 := t.TempDir()
	os.Symlink(outside, filepath.Join(root2, "etc"))
	if err := writeInRoot(root2, "hosts", "x", true); err == nil {
		if _, err := os.Stat(filepath.Join(outside, "hosts")); err == nil {
			t.Fatal("followed /etc out of the rootfs")
		}
	}
}

func TestInstallGuestConfig(t *testing.T) {
	pod := t.TempDir()
	app := filepath.Join(pod, "stage1", "rootfs", "opt", "stage2", "a", "rootfs")
	os.MkdirAll(app, 0o755)
	pm := &schema.PodManifest{Apps: schema.AppList{{Name: "a"}}}
	var gc contract.NetConfig
	d := &dnsOutput{resolv: "nameserver 1.2.3.4\n", hostsFallback: "127.0.0.1 localhost\n"}
	if err := d.install(pod, pm, &gc); err != nil {
		t.Fatal(err)
	}
	if gc.ResolvConf != d.resolv || gc.Hosts != d.hostsFallback {
		t.Errorf("guest config %+v", gc)
	}
	for f, want := range map[string]string{"resolv.conf": d.resolv, "hosts": d.hostsFallback} {
		if b, _ := os.ReadFile(filepath.Join(app, "etc", f)); string(b) != want {
			t.Errorf("app /etc/%s = %q", f, b)
		}
	}
}

func TestNetInfoFormat(t *testing.T) {
	dir := t.TempDir()
	err := SaveNetInfo(dir, []NetInfo{{NetName: "default", ConfPath: "net/99-default.conf", IfName: "eth0",
		IP: net.ParseIP("172.16.28.2").To4(), Mask: net.IP(net.CIDRMask(24, 32))}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, NetInfoFile))
	want := `[{"netName":"default","netConf":"net/99-default.conf","pluginPath":"","ifName":"eth0","ip":"172.16.28.2","args":"","mask":"255.255.255.0"}]` + "\n"
	if string(b) != want {
		t.Errorf("net-info.json\n%s\nwant\n%s", b, want)
	}
	SaveNetInfo(dir, nil)
	if b, _ := os.ReadFile(filepath.Join(dir, NetInfoFile)); string(b) != "[]\n" {
		t.Errorf("no networks: %q", b)
	}
}

func TestReleaseWithoutState(t *testing.T) {
	// A pod whose run died before any network step: nothing to do, twice.
	pod := filepath.Join(t.TempDir(), "6c6d3e1e-2b7f-4a35-9d41-1e0c3f4b5a21")
	os.MkdirAll(pod, 0o755)
	for i := 0; i < 2; i++ {
		if err := Release(pod); err != nil {
			t.Fatal(err)
		}
	}
	// A state file naming another pod's namespace is refused.
	os.MkdirAll(filepath.Join(pod, StateDir), 0o755)
	os.WriteFile(filepath.Join(pod, stateFile), []byte(`{"netns": "/var/run/netns/stage1-other"}`), 0o600)
	if err := Release(pod); err == nil {
		t.Error("released another pod's namespace")
	}
}

// The host's address is the gateway of the first IPv4 address that has one.
func TestGateway4(t *testing.T) {
	_, n6, _ := net.ParseCIDR("fd00::2/64")
	_, n4, _ := net.ParseCIDR("172.16.28.2/24")
	r := &current.Result{IPs: []*current.IPConfig{
		{Address: *n6, Gateway: net.ParseIP("fd00::1")},
		{Address: *n4, Gateway: net.ParseIP("172.16.28.1")},
	}}
	if got := gateway4(r); !got.Equal(net.ParseIP("172.16.28.1")) {
		t.Errorf("gateway4 = %v", got)
	}
	if got := gateway4(&current.Result{IPs: []*current.IPConfig{{Address: *n4}}}); got != nil {
		t.Errorf("gateway4 without a gateway = %v", got)
	}
}
