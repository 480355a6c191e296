package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
)

// PodConfig is what makes a booted guest this pod's: the host writes it
// (Encode: its length on a line, then the JSON and a newline) on the events
// port, to a cold guest when it says EventTemplatePoint and to a clone
// before it resumes; the configure program reads it (ReadPodConfig) at the
// template point, before it mounts anything of the pod. A cold boot and a
// clone of a template (docs/architecture.md, "Templates") take the same
// path, so a clone does nothing a cold pod does not.
//
// The host is trusted by the guest: ParsePodConfig only bounds the size and
// checks the form, so a bug shows as an error, not a half-configured pod.
type PodConfig struct {
	Hostname string `json:"hostname"`
	// MachineID is 32 lowercase hex digits (rkt: the pod UUID without
	// dashes).
	MachineID string `json:"machineID"`
	// Entropy is fresh randomness from the host: credited to the guest's
	// pool and the CRNG reseeded before anything pod-specific runs, so
	// clones of one template never share random numbers.
	Entropy []byte `json:"entropy"`
	// UnixNano is the host's wall clock when it wrote this line.
	UnixNano int64 `json:"unixNano"`
	// MACs are the pod's interfaces' addresses, in device order: QEMU's
	// devices carry DeviceMAC(i) (the same for every pod, so a template
	// fits every pod of its shape) and the guest sets these.
	MACs []string `json:"macs,omitempty"`
	// Units are the pod's systemd units, for the guest's runtime unit
	// directory; Accounts are the apps' passwd and group. Sent here
	// rather than read from the pod share: reading and copying a
	// handful of small files over 9p took ~100 ms of a clone's start.
	Units    []PodFile `json:"units,omitempty"`
	Accounts []PodFile `json:"accounts,omitempty"`
	// Net is the pod's network as the host set it up, for the guest to
	// apply (its interfaces' addresses and routes, /etc/resolv.conf and
	// /etc/hosts); nil: loopback only. Here for the same reason.
	Net *NetConfig `json:"net,omitempty"`
	// IO is what the I/O forwarder serves. It is a service of the image,
	// up before the template point (so a clone does not wait for its
	// start), and the configure program passes this on to it.
	IO IOConfig `json:"io"`
}

// IOConfig names the apps whose streams the I/O forwarder copies, in pod
// order, and the one (if any) that reads the host's stdin, through a
// terminal if TTY.
type IOConfig struct {
	Apps        []string `json:"apps"`
	Interactive string   `json:"interactive,omitempty"`
	TTY         bool     `json:"tty,omitempty"`
}

// PodFile is a file of the pod's configuration: its name (no directory)
// and contents.
type PodFile struct {
	Name string `json:"name"`
	Data string `json:"data"`
}

// Account files a PodConfig may carry.
var accountFiles = map[string]bool{"passwd": true, "group": true}

// EntropyBytes is how much randomness the host sends: a CRNG seed's worth
// twice over.
const EntropyBytes = 64

// MaxPodConfig bounds the configuration's JSON (a unit with rkt's
// seccomp filter is ~4 KiB: room for hundreds of apps).
const MaxPodConfig = 4 << 20

// maxLengthLine bounds the line that gives the JSON's length.
const maxLengthLine = 16

// ErrBadPodConfig wraps every ParsePodConfig failure.
var ErrBadPodConfig = errors.New("bad pod configuration")

var (
	machineIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	hostnameRe  = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,63})$`)
	// unitNameRe: a unit file's name, as systemd spells them (no
	// directory, no "." or "..").
	unitNameRe = regexp.MustCompile(`^[a-zA-Z0-9:_@-][a-zA-Z0-9:_.@-]{0,254}\.(service|target|socket|path|timer)$`)
)

// DeviceMAC is the address QEMU gives the i-th network device.
func DeviceMAC(i int) string { return fmt.Sprintf("02:00:00:00:00:%02x", i+1) }

// Encode is the wire form: the JSON's length in decimal on a line, then
// the JSON and a newline.
func (c PodConfig) Encode() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxPodConfig {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrBadPodConfig, len(b), MaxPodConfig)
	}
	out := strconv.AppendInt(nil, int64(len(b)), 10)
	out = append(out, '\n')
	out = append(out, b...)
	return append(out, '\n'), nil
}

// ReadPodConfig reads one configuration in Encode's form from r, and
// nothing after it: the length line a byte at a time, then exactly that
// many bytes and the newline.
func ReadPodConfig(r io.Reader) (PodConfig, error) {
	var head []byte
	for b := make([]byte, 1); ; {
		if len(head) == maxLengthLine {
			return PodConfig{}, fmt.Errorf("%w: length line over %d bytes", ErrBadPodConfig, maxLengthLine)
		}
		if _, err := io.ReadFull(r, b); err != nil {
			return PodConfig{}, fmt.Errorf("%w: read its length: %w", ErrBadPodConfig, err)
		}
		if b[0] == '\n' {
			break
		}
		head = append(head, b[0])
	}
	n, err := strconv.Atoi(string(head))
	if err != nil || n <= 0 || n > MaxPodConfig {
		return PodConfig{}, fmt.Errorf("%w: length %q", ErrBadPodConfig, head)
	}
	body := make([]byte, n+1)
	if _, err := io.ReadFull(r, body); err != nil {
		return PodConfig{}, fmt.Errorf("%w: read %d bytes: %w", ErrBadPodConfig, n, err)
	}
	if body[n] != '\n' {
		return PodConfig{}, fmt.Errorf("%w: no newline after %d bytes", ErrBadPodConfig, n)
	}
	return ParsePodConfig(body[:n])
}

// ParsePodConfig parses the JSON of one configuration.
func ParsePodConfig(b []byte) (PodConfig, error) {
	var c PodConfig
	if len(b) > MaxPodConfig {
		return c, fmt.Errorf("%w: over %d bytes", ErrBadPodConfig, MaxPodConfig)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: %w", ErrBadPodConfig, err)
	}
	return c, c.check()
}

func (c PodConfig) check() error {
	switch {
	case !hostnameRe.MatchString(c.Hostname):
		return fmt.Errorf("%w: hostname %q", ErrBadPodConfig, c.Hostname)
	case !machineIDRe.MatchString(c.MachineID):
		return fmt.Errorf("%w: machine id %q", ErrBadPodConfig, c.MachineID)
	case len(c.Entropy) < EntropyBytes:
		return fmt.Errorf("%w: %d bytes of entropy", ErrBadPodConfig, len(c.Entropy))
	case c.UnixNano <= 0:
		return fmt.Errorf("%w: no time", ErrBadPodConfig)
	}
	for _, m := range c.MACs {
		if _, err := net.ParseMAC(m); err != nil {
			return fmt.Errorf("%w: MAC %q", ErrBadPodConfig, m)
		}
	}
	for _, u := range c.Units {
		if !unitNameRe.MatchString(u.Name) {
			return fmt.Errorf("%w: unit name %q", ErrBadPodConfig, u.Name)
		}
	}
	for _, a := range c.Accounts {
		if !accountFiles[a.Name] {
			return fmt.Errorf("%w: account file %q", ErrBadPodConfig, a.Name)
		}
	}
	if err := c.IO.Check(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPodConfig, err)
	}
	if c.Net != nil {
		for _, ifc := range c.Net.Interfaces {
			if _, err := net.ParseMAC(ifc.MAC); err != nil {
				return fmt.Errorf("%w: interface %q: MAC %q", ErrBadPodConfig, ifc.Name, ifc.MAC)
			}
		}
	}
	return nil
}

// appNameRe: an app's name as it appears in the guest's paths and unit
// names (appc's AC names, less the characters no unit name may hold).
var appNameRe = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Check says whether c is one the forwarder can serve: at least one app,
// names that make FIFO and unit names, the interactive app among them.
func (c IOConfig) Check() error {
	if len(c.Apps) == 0 {
		return errors.New("I/O: no apps")
	}
	seen := make(map[string]bool, len(c.Apps))
	for _, a := range c.Apps {
		if !appNameRe.MatchString(a) || !unitNameRe.MatchString(AppService(a)) {
			return fmt.Errorf("I/O: app name %q", a)
		}
		if seen[a] {
			return fmt.Errorf("I/O: app %q named twice", a)
		}
		seen[a] = true
	}
	switch {
	case c.Interactive != "" && !seen[c.Interactive]:
		return fmt.Errorf("I/O: interactive app %q is not one of the apps", c.Interactive)
	case c.TTY && c.Interactive == "":
		return errors.New("I/O: a terminal without an interactive app")
	}
	return nil
}
