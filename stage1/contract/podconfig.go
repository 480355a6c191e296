package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
)

// PodConfig is what makes a booted guest this pod's: the host writes it,
// one JSON line, on the events port as soon as QEMU connects; the pre-init
// reads it at the template point (after it sends EventTemplatePoint), before it
// mounts anything of the pod. A cold boot and a clone of a template
// (docs/architecture.md, "Templates") take the same path, so a clone
// does nothing a cold pod does not.
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
}

// EntropyBytes is how much randomness the host sends: a CRNG seed's worth
// twice over.
const EntropyBytes = 64

// MaxPodConfigLine bounds the configuration line.
const MaxPodConfigLine = 16 << 10

// ErrBadPodConfig wraps every ParsePodConfig failure.
var ErrBadPodConfig = errors.New("bad pod configuration")

var (
	machineIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	hostnameRe  = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,63})$`)
)

// DeviceMAC is the address QEMU gives the i-th network device.
func DeviceMAC(i int) string { return fmt.Sprintf("02:00:00:00:00:%02x", i+1) }

// Encode is the wire form, newline included.
func (c PodConfig) Encode() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if len(b) >= MaxPodConfigLine {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadPodConfig, len(b))
	}
	return append(b, '\n'), nil
}

// ParsePodConfig parses one line.
func ParsePodConfig(line []byte) (PodConfig, error) {
	var c PodConfig
	if len(line) > MaxPodConfigLine {
		return c, fmt.Errorf("%w: line over %d bytes", ErrBadPodConfig, MaxPodConfigLine)
	}
	if err := json.Unmarshal(line, &c); err != nil {
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
	return nil
}
