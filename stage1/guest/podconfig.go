package guest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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
	machineIDFlag  = "--machine-id="
	bitsPerByteRnd = 8
)

// awaitPodConfig is the template point: the guest has booted its kernel
// and mounted nothing of the pod. It tells the host so (EventPreInit) and
// waits for the pod's configuration on the events port. A host making a
// template saves the VM while this waits; its clones resume here, each
// with a configuration of its own. ok is false in a VM without the port
// (the boot self-test).
func awaitPodConfig() (c contract.PodConfig, ok bool, err error) {
	f, err := openPort(contract.EventsPort, os.O_RDWR)
	if errors.Is(err, ErrNoPort) {
		return c, false, nil
	} else if err != nil {
		return c, false, err
	}
	defer f.Close()
	if _, err := f.WriteString(string(contract.EventPreInit) + "\n"); err != nil {
		return c, false, fmt.Errorf("write to port %s: %w", contract.EventsPort, err)
	}
	line, err := readConfigLine(f)
	if err != nil {
		return c, false, err
	}
	c, err = contract.ParsePodConfig(line)
	return c, err == nil, err
}

// readConfigLine reads one line of at most contract.MaxPodConfigLine bytes
// a byte at a time: nothing after the newline may be taken from the port,
// which later programs read.
func readConfigLine(r io.Reader) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, contract.MaxPodConfigLine+1), 1)
	var line []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("read the pod configuration: %w", err)
		}
		if b == '\n' {
			return line, nil
		}
		line = append(line, b)
	}
}

// applyPodConfig makes the guest this pod's, before anything of the pod
// runs: fresh randomness first, then the clock, the hostname and the
// network devices' addresses. It returns systemd's extra arguments.
func applyPodConfig(c contract.PodConfig) ([]string, error) {
	if err := seedRandom(c.Entropy); err != nil {
		return nil, err
	}
	ts := unix.NsecToTimespec(c.UnixNano)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return nil, fmt.Errorf("set the clock: %w", err)
	}
	// systemd keeps a hostname already set when none is configured.
	if err := unix.Sethostname([]byte(c.Hostname)); err != nil {
		return nil, fmt.Errorf("set the hostname: %w", err)
	}
	for i, m := range c.MACs {
		if err := setDeviceMAC(i, m); err != nil {
			return nil, err
		}
	}
	return []string{machineIDFlag + c.MachineID}, nil
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
