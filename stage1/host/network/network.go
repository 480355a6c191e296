package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/hashicorp/go-multierror"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/fsutil"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// Paths, relative to the pod directory, of what this package keeps there.
const (
	// StateDir holds the copies of the network configurations (rkt's
	// place for them), the state gc needs and libcni's result cache.
	StateDir  = "net"
	stateFile = "net/state.json"
	cacheDir  = "net/cache"
	// NetInfoFile is what `rkt list` and `rkt status` read.
	NetInfoFile = "net-info.json"
)

// PluginsDir is where the stage1 image carries the CNI plugins, relative
// to its rootfs.
const PluginsDir = "net-plugins"

// UserPluginsDir holds plugins a host adds for its own networks; rkt looked
// there too, before its own.
var UserPluginsDir = "/usr/lib/rkt/plugins/net"

// pluginTimeout bounds one CNI operation (ADD or DEL of a network).
const pluginTimeout = 60 * time.Second

// Options is what Setup needs to know about the pod.
type Options struct {
	PodDir      string
	UUID        string
	Manifest    *schema.PodManifest
	Nets        []string // --net elements
	LocalConfig string
	Hostname    string
	// DNSConfMode maps "resolv" and "hosts" to rkt's modes.
	DNSConfMode map[string]string
	Logf        func(string, ...any)
}

// Result is what the VM needs.
type Result struct {
	Taps []qemu.Tap
	// Summary says in one line what the pod got, for debug output.
	Summary string
	// HostIP is the host's address on the pod's forwardable network (the
	// first masquerading one, else the last): its IPv4 gateway, which
	// ptp and bridge put on the host side. It is where the apps reach
	// services of the host, such as rkt's metadata service. Nil without
	// networks or when that network has no IPv4 gateway.
	HostIP net.IP
	// Guest is what the guest applies (contract.PodConfig's Net): its
	// interfaces' addresses and routes, its resolv.conf and hosts.
	Guest contract.NetConfig
}

// Close releases the run entry point's copies of the tap descriptors.
func (r *Result) Close() error {
	for _, t := range r.Taps {
		t.File.Close()
	}
	return nil
}

// state is what Release needs, saved before each step of Setup so that a
// run killed at any point can still be cleaned up.
type state struct {
	NetNS    string     `json:"netns,omitempty"`
	Attached []attached `json:"attached,omitempty"`
}

type attached struct {
	Net
	IfName string `json:"ifName"`
	// List is the configuration list given to libcni (the network's
	// configuration, with the portmap plugin chained when ports are
	// forwarded to this network).
	List           json.RawMessage `json:"list"`
	CapabilityArgs map[string]any  `json:"capabilityArgs,omitempty"`
}

func saveState(podDir string, s *state) error {
	b, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(podDir, stateFile), b, 0o600)
}

func pluginPaths(podDir string) []string {
	var paths []string
	if fi, err := os.Stat(UserPluginsDir); err == nil && fi.IsDir() {
		paths = append(paths, UserPluginsDir)
	}
	return append(paths, filepath.Join(contract.Stage1Rootfs(podDir), PluginsDir))
}

func cniConfig(podDir string) *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(pluginPaths(podDir), filepath.Join(podDir, cacheDir), nil)
}

func runtimeConf(uuid, nsPath string, a attached) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID:    uuid,
		NetNS:          nsPath,
		IfName:         a.IfName,
		CapabilityArgs: a.CapabilityArgs,
	}
	// As kubelet does: a plugin takes what it knows (host-local takes
	// IP=) instead of refusing what it does not.
	if a.Args != "" {
		rt.Args = append(rt.Args, [2]string{"IgnoreUnknown", "1"})
	}
	for _, kv := range strings.Split(a.Args, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			rt.Args = append(rt.Args, [2]string{k, v})
		}
	}
	return rt
}

// Setup creates the pod's networks, writes what rkt reads (net-info.json)
// and returns what the guest applies (Result.Guest). The caller must call
// Release when the pod ends, also when Setup fails.
func Setup(o Options) (*Result, error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	reqs, err := ParseNetList(o.Nets)
	if err != nil {
		return nil, err
	}
	nets, err := LoadNets(o.LocalConfig, reqs, o.Logf)
	if err != nil {
		return nil, err
	}
	s := &setup{o: o, res: &Result{Summary: "none: the pod has loopback only"}}
	if len(nets) > 0 {
		if err := s.attachAll(nets); err != nil {
			return nil, err
		}
	}
	if err := s.writeFiles(); err != nil {
		return nil, err
	}
	return s.res, nil
}

// setup is one Setup under way: where it attaches the networks, and what
// it has learnt from those attached so far.
type setup struct {
	o   Options
	res *Result
	// Set by attachAll once the namespace exists (h only while it runs).
	st  *state
	h   *netlink.Handle
	cni *libcni.CNIConfig

	guest   contract.NetConfig // for Result.Guest
	infos   []NetInfo          // for NetInfoFile
	dns     *cnitypes.DNS      // the first DNS settings a plugin returned
	dnsNet  string             // the network that returned them
	podIP   string             // the pod's first IPv4 address
	summary []string           // one entry per network, for Result.Summary
}

// attachAll creates the pod's namespace and attaches every network to it,
// saving what Release needs before each step.
func (s *setup) attachAll(nets []Net) error {
	podDir := s.o.PodDir
	if err := os.MkdirAll(filepath.Join(podDir, StateDir), 0o755); err != nil {
		return err
	}
	s.st = &state{NetNS: NetNSPath(s.o.UUID)}
	if err := saveState(podDir, s.st); err != nil {
		return err
	}
	if err := createNetNS(s.st.NetNS); err != nil {
		return err
	}
	h, err := nsHandle(s.st.NetNS)
	if err != nil {
		return err
	}
	defer h.Close()
	s.h = h
	ports, err := PortMappings(s.o.Manifest)
	if err != nil {
		return err
	}
	fwd := forwardable(nets)
	s.cni = cniConfig(podDir)
	for i, n := range nets {
		a := attached{Net: n, IfName: "eth" + strconv.Itoa(i)}
		var chain []json.RawMessage
		if i == fwd && len(ports) > 0 {
			chain = append(chain, portmapConf)
			a.CapabilityArgs = map[string]any{"portMappings": ports}
		}
		if err := s.attach(i, a, chain, i == fwd); err != nil {
			return err
		}
	}
	s.res.Summary = strings.Join(s.summary, "; ")
	if len(ports) > 0 {
		s.res.Summary += fmt.Sprintf(" (%d port(s) forwarded to %s)", len(ports), nets[fwd].Name)
	}
	return nil
}

// attach adds the pod's i-th network (a, with the plugins of chain after
// its own), hands its traffic to a tap for QEMU and records what the
// network gave the pod. fwd: forwarded ports lead to this network.
func (s *setup) attach(i int, a attached, chain []json.RawMessage, fwd bool) error {
	cur, err := s.add(a, chain)
	if err != nil {
		return err
	}
	ifc, err := snapshot(s.h, a.IfName)
	if err != nil {
		return fmt.Errorf("network %q: %w", a.Name, err)
	}
	tap, err := attachTap(s.h, s.st.NetNS, a.IfName, "tap"+strconv.Itoa(i))
	if err != nil {
		return fmt.Errorf("network %q: %w", a.Name, err)
	}
	s.res.Taps = append(s.res.Taps, qemu.Tap{File: tap, MAC: ifc.MAC})
	s.guest.Interfaces = append(s.guest.Interfaces, ifc)
	if fwd {
		s.res.HostIP = gateway4(cur)
	}
	s.record(a, cur, ifc)
	return nil
}

// add runs the CNI ADD of a (with the plugins of chain after its own),
// having first saved the state that lets Release undo it.
func (s *setup) add(a attached, chain []json.RawMessage) (*current.Result, error) {
	var err error
	if a.List, err = confList(a.Conf, chain...); err != nil {
		return nil, fmt.Errorf("network %q: %w", a.Name, err)
	}
	confCopy := filepath.Join(s.o.PodDir, StateDir, a.File)
	if err := os.WriteFile(confCopy, a.Conf, 0o644); err != nil {
		return nil, err
	}
	s.st.Attached = append(s.st.Attached, a)
	if err := saveState(s.o.PodDir, s.st); err != nil {
		return nil, err
	}
	list, err := libcni.ConfListFromBytes(a.List)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", a.Name, err)
	}
	s.o.Logf("network %s: adding %s (type %s)", a.Name, a.IfName, a.Type)
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	r, err := s.cni.AddNetworkList(ctx, list, runtimeConf(s.o.UUID, s.st.NetNS, a))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("error adding network %q: %w", a.Name, err)
	}
	cur, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, fmt.Errorf("network %q: result: %w", a.Name, err)
	}
	return cur, nil
}

// record notes an attached network for net-info.json and the summary, and
// takes the pod's IPv4 address and DNS settings from the first network
// that gives them.
func (s *setup) record(a attached, cur *current.Result, ifc contract.NetInterface) {
	info := NetInfo{
		NetName:    a.Name,
		ConfPath:   filepath.Join(StateDir, a.File),
		PluginPath: pluginPath(s.o.PodDir, a.Type),
		IfName:     a.IfName,
		Args:       a.Args,
	}
	if ip, mask := firstIPv4(cur, ifc.Addresses); ip != nil {
		info.IP, info.Mask = ip, mask
		if s.podIP == "" {
			s.podIP = ip.String()
		}
	}
	s.infos = append(s.infos, info)
	if s.dns == nil && !dnsEmpty(cur.DNS) {
		d := cur.DNS
		s.dns, s.dnsNet = &d, a.Name
	}
	s.summary = append(s.summary, fmt.Sprintf("%s %s %s", a.Name, a.IfName, strings.Join(ifc.Addresses, ",")))
}

// writeFiles writes what the apps, the guest and rkt read: the DNS files,
// the guest's network configuration and net-info.json.
func (s *setup) writeFiles() error {
	o := s.o
	files, err := dnsFiles(dnsInput{
		stage1Rootfs: contract.Stage1Rootfs(o.PodDir),
		resolvMode:   modeOf(o.DNSConfMode, "resolv"),
		hostsMode:    modeOf(o.DNSConfMode, "hosts"),
		cniDNS:       s.dns,
		cniNet:       s.dnsNet,
		hostname:     o.Hostname,
		podIP:        s.podIP,
	})
	if err != nil {
		return err
	}
	if err := files.install(o.PodDir, o.Manifest, &s.guest); err != nil {
		return err
	}
	s.res.Guest = s.guest
	return SaveNetInfo(o.PodDir, s.infos)
}

func modeOf(m map[string]string, k string) string {
	if v := m[k]; v != "" {
		return v
	}
	return "default"
}

// pluginPath is where the plugin of a network type was found, for
// net-info.json.
func pluginPath(podDir, typ string) string {
	for _, d := range pluginPaths(podDir) {
		p := filepath.Join(d, typ)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// portmapConf is chained after the network that forwarded ports lead to.
var portmapConf = json.RawMessage(`{"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}`)

// confList wraps a network configuration (rkt's net.d files hold single
// plugin configurations) into a configuration list, chaining more plugins
// after it. Chaining needs CNI 0.3.0 or later: older configurations are
// raised to 0.3.1, which every plugin of ours reads the same way.
func confList(conf json.RawMessage, chain ...json.RawMessage) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		return nil, err
	}
	version, _ := m["cniVersion"].(string)
	if version == "" {
		version = "0.1.0" // what a configuration without one means
	}
	if len(chain) > 0 && (version == "0.1.0" || version == "0.2.0") {
		version = "0.3.1"
	}
	plugins := []any{m}
	for _, c := range chain {
		var p map[string]any
		if err := json.Unmarshal(c, &p); err != nil {
			return nil, err
		}
		plugins = append(plugins, p)
	}
	list := map[string]any{
		"cniVersion": version,
		"name":       m["name"],
		"plugins":    plugins,
	}
	delete(m, "cniVersion")
	return json.Marshal(list)
}

// PortMapping is the portmap plugin's portMappings capability entry.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// PortMappings resolves the pod manifest's exposed ports (rkt run --port)
// against the apps' ports, as rkt does: by name, or the pod port given.
func PortMappings(pm *schema.PodManifest) ([]PortMapping, error) {
	if pm == nil {
		return nil, nil
	}
	var out []PortMapping
	for _, ep := range pm.Ports {
		pp := ep.PodPort
		if pp == nil {
			for _, ra := range pm.Apps {
				if ra.App == nil {
					continue
				}
				for i, p := range ra.App.Ports {
					if p.Name == ep.Name {
						pp = &ra.App.Ports[i]
					}
				}
			}
		}
		if pp == nil {
			return nil, fmt.Errorf("port name %q is not defined by any app of the pod", ep.Name)
		}
		count := pp.Count
		if count == 0 {
			count = 1
		}
		proto := pp.Protocol
		if proto == "" {
			proto = "tcp"
		}
		for k := uint(0); k < count; k++ {
			m := PortMapping{HostPort: int(ep.HostPort + k), ContainerPort: int(pp.Port + k), Protocol: proto}
			if ep.HostIP != nil && !ep.HostIP.IsUnspecified() {
				m.HostIP = ep.HostIP.String()
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func dnsEmpty(d cnitypes.DNS) bool {
	return len(d.Nameservers) == 0 && d.Domain == "" && len(d.Search) == 0 && len(d.Options) == 0
}

// firstIPv4 is the network's IPv4 address for net-info.json: from the CNI
// result, else from what the interface got.
func firstIPv4(r *current.Result, addrs []string) (net.IP, net.IP) {
	for _, ipc := range r.IPs {
		if ip4 := ipc.Address.IP.To4(); ip4 != nil {
			return ip4, net.IP(ipc.Address.Mask).To4()
		}
	}
	for _, a := range addrs {
		if ip, n, err := net.ParseCIDR(a); err == nil && ip.To4() != nil {
			return ip.To4(), net.IP(n.Mask).To4()
		}
	}
	return nil, nil
}

// gateway4 is the first IPv4 gateway of a CNI result.
func gateway4(r *current.Result) net.IP {
	for _, ipc := range r.IPs {
		if gw := ipc.Gateway.To4(); gw != nil && ipc.Address.IP.To4() != nil {
			return gw
		}
	}
	return nil
}

// snapshot reads what the plugin configured on the interface: the guest
// gets the same MAC, MTU, addresses and routes.
func snapshot(h *netlink.Handle, ifName string) (contract.NetInterface, error) {
	link, err := h.LinkByName(ifName)
	if err != nil {
		return contract.NetInterface{}, fmt.Errorf("find %s in the pod namespace: %w", ifName, err)
	}
	ifc := contract.NetInterface{Name: ifName, MAC: link.Attrs().HardwareAddr.String(), MTU: link.Attrs().MTU}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return ifc, err
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() || a.IP.IsLoopback() {
			continue
		}
		ifc.Addresses = append(ifc.Addresses, a.IPNet.String())
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: link.Attrs().Index, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return ifc, err
	}
	for _, r := range routes {
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		dst := r.Dst
		if dst == nil {
			if r.Family == unix.AF_INET6 {
				dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
			} else {
				dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
			}
		}
		if dst.IP.IsLinkLocalUnicast() || dst.IP.IsMulticast() {
			continue
		}
		nr := contract.NetRoute{Dst: dst.String(), Metric: r.Priority}
		if r.Gw != nil {
			nr.Gateway = r.Gw.String()
		}
		if r.Src != nil {
			nr.Src = r.Src.String()
		}
		ifc.Routes = append(ifc.Routes, nr)
	}
	return ifc, nil
}

// attachTap creates the tap that carries ifName's traffic to the guest.
func attachTap(h *netlink.Handle, nsPath, ifName, tapName string) (*os.File, error) {
	f, err := openTap(nsPath, tapName)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	veth, err := h.LinkByName(ifName)
	if err != nil {
		return nil, err
	}
	tap, err := h.LinkByName(tapName)
	if err != nil {
		return nil, err
	}
	if err := h.LinkSetMTU(tap, veth.Attrs().MTU); err != nil {
		return nil, fmt.Errorf("set %s MTU: %w", tapName, err)
	}
	if err := h.LinkSetUp(tap); err != nil {
		return nil, fmt.Errorf("set %s up: %w", tapName, err)
	}
	if err := h.LinkSetUp(veth); err != nil {
		return nil, fmt.Errorf("set %s up: %w", ifName, err)
	}
	if err := redirect(h, veth, tap); err != nil {
		return nil, err
	}
	ok = true
	return f, nil
}

// Release undoes Setup for the pod in podDir, from what Setup saved there:
// CNI DEL of every network (with libcni's cached results: IPAM leases,
// iptables rules, host interfaces), then the namespace. It is idempotent
// and touches nothing of another pod: the namespace is the one named after
// this pod's UUID (the directory's name).
func Release(podDir string) error {
	uuid := filepath.Base(podDir)
	var st state
	b, err := os.ReadFile(filepath.Join(podDir, stateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("%s: %w", stateFile, err)
		}
	}
	nsPath := NetNSPath(uuid)
	if st.NetNS != "" && st.NetNS != nsPath {
		return fmt.Errorf("%s names namespace %s, not this pod's %s", stateFile, st.NetNS, nsPath)
	}
	nsGiven := nsPath
	if _, err := os.Stat(nsPath); err != nil {
		nsGiven = "" // plugins then release what lives outside it
	}
	var errs *multierror.Error
	cni := cniConfig(podDir)
	for i := len(st.Attached) - 1; i >= 0; i-- {
		a := st.Attached[i]
		list, err := libcni.ConfListFromBytes(a.List)
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("network %q: %w", a.Name, err))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
		err = cni.DelNetworkList(ctx, list, runtimeConf(uuid, nsGiven, a))
		cancel()
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("error deleting network %q: %w", a.Name, err))
		}
	}
	if err := destroyNetNS(nsPath); err != nil {
		errs = multierror.Append(errs, err)
	}
	if errs.ErrorOrNil() != nil {
		return errs
	}
	// Done: a second Release has nothing to do.
	for _, p := range []string{stateFile, cacheDir} {
		if err := os.RemoveAll(filepath.Join(podDir, p)); err != nil {
			return err
		}
	}
	return nil
}
