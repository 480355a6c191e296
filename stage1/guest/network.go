package guest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkWait bounds how long PreInit waits for a network device to appear:
// virtio-net probes before userspace starts, so this is only a safety net.
const linkWait = 3 * time.Second

// setupNetwork applies the pod's network configuration (from its
// PodConfig; nil: loopback only, up since before the template point).
func setupNetwork(c *contract.NetConfig) error {
	if c == nil {
		return nil
	}
	for _, ifc := range c.Interfaces {
		if err := applyInterface(ifc); err != nil {
			return fmt.Errorf("interface %s (%s): %w", ifc.Name, ifc.MAC, err)
		}
	}
	for _, f := range []struct{ name, content string }{
		{"resolv.conf", c.ResolvConf},
		{"hosts", c.Hosts},
	} {
		if f.content == "" {
			continue
		}
		if err := overlayEtc(f.name, []byte(f.content)); err != nil {
			return err
		}
	}
	return nil
}

// loopbackUp brings lo up (the same in every pod).
func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// overlayEtc puts content over /etc/<name> of the read-only guest image,
// from a copy in /run.
func overlayEtc(name string, content []byte) error {
	dir := "/run/stage1"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src := filepath.Join(dir, name)
	if err := os.WriteFile(src, content, 0o644); err != nil {
		return err
	}
	dst := "/etc/" + name
	if _, err := os.Stat(dst); err != nil {
		// Nothing to mount over: the image has no such file.
		return nil
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dst, err)
	}
	return nil
}

// linkByMAC finds the interface with the given hardware address.
func linkByMAC(mac net.HardwareAddr) (netlink.Link, error) {
	deadline := time.Now().Add(linkWait)
	for {
		links, err := netlink.LinkList()
		if err != nil {
			return nil, err
		}
		for _, l := range links {
			if l.Attrs().HardwareAddr.String() == mac.String() {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no network device with MAC %s", mac)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func applyInterface(ifc contract.NetInterface) error {
	mac, err := net.ParseMAC(ifc.MAC)
	if err != nil {
		return err
	}
	link, err := linkByMAC(mac)
	if err != nil {
		return err
	}
	if ifc.Name != "" && link.Attrs().Name != ifc.Name {
		if err := netlink.LinkSetName(link, ifc.Name); err != nil {
			return fmt.Errorf("rename %s: %w", link.Attrs().Name, err)
		}
	}
	if ifc.MTU > 0 && link.Attrs().MTU != ifc.MTU {
		if err := netlink.LinkSetMTU(link, ifc.MTU); err != nil {
			return fmt.Errorf("set MTU %d: %w", ifc.MTU, err)
		}
	}
	for _, a := range ifc.Addresses {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			return err
		}
		// The routes come from the host exactly as the plugin made
		// them, the prefix route included (or deliberately missing,
		// as ptp does).
		addr.Flags = unix.IFA_F_NOPREFIXROUTE
		if addr.IP.To4() == nil {
			// No duplicate address detection: the address was
			// already checked where the plugin configured it.
			addr.Flags |= unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add address %s: %w", a, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	routes, err := GuestRoutes(ifc.Routes, link.Attrs().Index)
	if err != nil {
		return err
	}
	for _, r := range routes {
		if err := netlink.RouteReplace(&r); err != nil {
			return fmt.Errorf("add route %s: %w", r, err)
		}
	}
	return nil
}

// GuestRoutes turns the host's description of routes into netlink routes
// through link index idx, ordered so that each gateway is reachable when
// its route is added: on-link routes first.
func GuestRoutes(in []contract.NetRoute, idx int) ([]netlink.Route, error) {
	var out []netlink.Route
	for _, r := range in {
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			return nil, fmt.Errorf("route destination %q: %w", r.Dst, err)
		}
		nr := netlink.Route{LinkIndex: idx, Dst: dst, Priority: r.Metric}
		if r.Gateway != "" {
			if nr.Gw = net.ParseIP(r.Gateway); nr.Gw == nil {
				return nil, fmt.Errorf("route gateway %q", r.Gateway)
			}
			nr.Scope = netlink.SCOPE_UNIVERSE
		} else {
			nr.Scope = netlink.SCOPE_LINK
		}
		if r.Src != "" {
			if nr.Src = net.ParseIP(r.Src); nr.Src == nil {
				return nil, fmt.Errorf("route source %q", r.Src)
			}
		}
		out = append(out, nr)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Gw == nil && out[j].Gw != nil })
	return out, nil
}
