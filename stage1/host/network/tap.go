package network

import (
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// openTap creates a tap device named name in the namespace at nsPath and
// returns its open descriptor. The device is not persistent: it goes away
// when the last holder of the descriptor (QEMU, in the end) closes it.
func openTap(nsPath, name string) (*os.File, error) {
	var f *os.File
	err := inNetNS(nsPath, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		// A virtio-net header lets QEMU pass checksum and segmentation
		// offloads through.
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("create tap %s: %w", name, err)
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
		return nil
	})
	return f, err
}

// nsHandle is a netlink handle working inside the namespace at nsPath.
func nsHandle(nsPath string) (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	return h, nil
}

// redirect joins two links of one namespace: everything that arrives on
// either is sent out of the other, before any protocol sees it.
func redirect(h *netlink.Handle, a, b netlink.Link) error {
	for _, p := range [][2]netlink.Link{{a, b}, {b, a}} {
		from, to := p[0].Attrs().Index, p[1].Attrs().Index
		q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: from,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_INGRESS,
		}}
		if err := h.QdiscAdd(q); err != nil {
			return fmt.Errorf("ingress qdisc on %s: %w", p[0].Attrs().Name, err)
		}
		mirred := netlink.NewMirredAction(to)
		mirred.MirredAction = netlink.TCA_EGRESS_REDIR
		f := &netlink.U32{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: from,
				Parent:    netlink.MakeHandle(0xffff, 0),
				Priority:  1,
				Protocol:  unix.ETH_P_ALL,
			},
			// No selector: u32 matches every packet.
			Actions: []netlink.Action{mirred},
		}
		if err := h.FilterAdd(f); err != nil {
			return fmt.Errorf("redirect %s to %s: %w", p[0].Attrs().Name, p[1].Attrs().Name, err)
		}
	}
	return nil
}
