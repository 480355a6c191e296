package guest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strings"
	"unsafe"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The kernel's random-pool ioctls (linux/random.h); golang.org/x/sys does
// not name them.
const (
	rndAddEntropy  = 0x40085203 // _IOW('R', 0x03, int[2])
	rndReseedCRNG  = 0x5207     // _IO('R', 0x07)
	randomDevice   = "/dev/urandom"
	bitsPerByteRnd = 8
)

// Configure is the template point (contract.ConfigureService): systemd
// is up and nothing of any pod is in the guest. It tells the host so and
// waits for the pod's configuration; a host making a template saves the
// VM while it waits, and every clone resumes here with a configuration of
// its own. Then it makes the guest the pod's, installs the pod's units and
// hands the pod's I/O to the forwarder (up since the boot); when it exits,
// systemd starts the pod's target (the service's OnSuccess=).
func Configure() error {
	// What is the same in every pod is done before the template point,
	// once for all of a template's clones.
	if err := loopbackUp(); err != nil {
		return err
	}
	warmParse()
	if err := warmUp(); err != nil {
		return err
	}
	if err := skipBootKernelLog(); err != nil {
		// The journal then holds the boot's kernel messages: go on.
		fmt.Fprintf(os.Stderr, "stage1-guest: %v\n", err)
	}
	c, err := awaitPodConfig()
	if err != nil {
		return err
	}
	if err := applyPodConfig(c); err != nil {
		return err
	}
	if err := mountPod(); err != nil {
		return err
	}
	if err := installUnits(c.Units); err != nil {
		return err
	}
	if err := installAccounts(c.Accounts); err != nil {
		return err
	}
	if err := setupNetwork(c.Net); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	// Last: the forwarder tells the host the agent is up, which is
	// then the pod's.
	return sendIOConfig(c.IO)
}

// warmConfig is a valid configuration of no pod, with one of each part.
var warmConfig = contract.PodConfig{
	Hostname:  "localhost",
	MachineID: strings.Repeat("0", 32),
	Entropy:   make([]byte, contract.EntropyBytes),
	UnixNano:  1,
	MACs:      []string{contract.DeviceMAC(0)},
	Units:     []contract.PodFile{{Name: "a.service", Data: "[Unit]\nDescription=a\n"}},
	Accounts:  []contract.PodFile{{Name: "group", Data: "root:x:0:\n"}},
	Net: &contract.NetConfig{Interfaces: []contract.NetInterface{{Name: "eth0", MAC: contract.DeviceMAC(0),
		Addresses: []string{"10.0.0.2/24"}, Routes: []contract.NetRoute{{Dst: "0.0.0.0/0", Gateway: "10.0.0.1"}}}},
		ResolvConf: "nameserver 10.0.0.1\n", Hosts: "127.0.0.1 localhost\n"},
	IO: contract.IOConfig{Apps: []string{"a"}},
}

// warmParse reads warmConfig, in its wire form, and drops it. The read
// of the pod's own configuration is then no first run: its code was run
// before the template point, where a template keeps what its QEMU
// translated, and the JSON decoder's per-type cache is filled.
func warmParse() {
	wire, err := warmConfig.Encode()
	if err == nil {
		_, err = contract.ReadPodConfig(bytes.NewReader(wire))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1-guest: warm-up: %v\n", err)
	}
}

// awaitPodConfig tells the host the guest is at the template point
// (EventTemplatePoint) and reads the pod's configuration on the events
// port.
func awaitPodConfig() (c contract.PodConfig, err error) {
	f, err := openPort(contract.EventsPort, os.O_RDWR)
	if err != nil {
		return c, err
	}
	defer f.Close()
	if _, err := f.WriteString(string(contract.EventTemplatePoint) + "\n"); err != nil {
		return c, fmt.Errorf("write to port %s: %w", contract.EventsPort, err)
	}
	return contract.ReadPodConfig(f)
}

// applyPodConfig makes the guest this pod's, before anything of the pod
// runs: fresh randomness first, then the clock, the hostname, the machine
// id and the network devices' addresses.
func applyPodConfig(c contract.PodConfig) error {
	if err := seedRandom(c.Entropy); err != nil {
		return err
	}
	if err := renewBootID(); err != nil {
		return err
	}
	ts := unix.NsecToTimespec(c.UnixNano)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("set the clock: %w", err)
	}
	if err := unix.Sethostname([]byte(c.Hostname)); err != nil {
		return fmt.Errorf("set the hostname: %w", err)
	}
	if err := setMachineID(c.MachineID); err != nil {
		return err
	}
	for i, m := range c.MACs {
		if err := setDeviceMAC(i, m); err != nil {
			return err
		}
	}
	return nil
}

// runMachineID is where systemd keeps the machine id it made up at boot
// (the image's /etc/machine-id is empty on a read-only root), bound over
// /etc/machine-id. Written in place, the bind shows the pod's id; journald,
// the pod's, starts later and reads it.
const runMachineID = "/run/machine-id"

func setMachineID(id string) error {
	f, err := os.OpenFile(runMachineID, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("set the machine id: %w", err)
	}
	_, err = f.WriteString(id + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("set the machine id: %w", err)
	}
	return nil
}

// seedRandom credits b to the kernel's entropy pool and reseeds the CRNG
// from it at once, so that what this guest draws from now on differs from
// what any other clone of its template draws.
func seedRandom(b []byte) error {
	f, err := os.OpenFile(randomDevice, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", randomDevice, err)
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	var req bytes.Buffer
	binary.Write(&req, binary.NativeEndian, int32(len(b)*bitsPerByteRnd))
	binary.Write(&req, binary.NativeEndian, int32(len(b)))
	req.Write(b)
	buf := req.Bytes()
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndAddEntropy, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return fmt.Errorf("add the host's entropy: %w", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndReseedCRNG, 0); e != 0 {
		return fmt.Errorf("reseed the CRNG: %w", e)
	}
	return nil
}

// bootIDFile is the kernel's boot id. Our kernel makes a new one when it
// is written (kernel/patches/0004; CAP_SYS_ADMIN, the value is ignored).
const bootIDFile = "/proc/sys/kernel/random/boot_id"

// renewBootID gives the guest a boot id of its own, drawn from the reseeded
// CRNG. The kernel makes one on its first read: a clone would otherwise
// keep its template's if anything read it before the template point (PID
// 1 does as soon as its event loop arms a timer with some slack, e.g. for
// a D-Bus client's authentication).
func renewBootID() error {
	if err := os.WriteFile(bootIDFile, []byte("new\n"), 0); err != nil {
		return fmt.Errorf("renew the boot id: %w", err)
	}
	return nil
}

// setDeviceMAC gives the i-th network device (contract.DeviceMAC(i)) the
// pod's address mac.
func setDeviceMAC(i int, mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return err
	}
	dev, _ := net.ParseMAC(contract.DeviceMAC(i))
	link, err := linkByMAC(dev)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetHardwareAddr(link, hw); err != nil {
		return fmt.Errorf("set the address of %s to %s: %w", link.Attrs().Name, mac, err)
	}
	return nil
}
