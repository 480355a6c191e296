package contract

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func validPodConfig() PodConfig {
	return PodConfig{
		Hostname: "rkt-4c5f9d2e-8f0e-4d8c-9b3a-2f6f1c0d7e11", MachineID: "4c5f9d2e8f0e4d8c9b3a2f6f1c0d7e11",
		Entropy: bytes.Repeat([]byte{7}, EntropyBytes), UnixNano: 1, MACs: []string{"0a:58:0a:01:00:02"},
	}
}

func TestPodConfigRoundTrip(t *testing.T) {
	c := validPodConfig()
	b, err := c.Encode()
	if err != nil || !bytes.HasSuffix(b, []byte("\n")) || bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("Encode = %q, %v: want one line", b, err)
	}
	got, err := ParsePodConfig(bytes.TrimSuffix(b, []byte("\n")))
	if err != nil || got.Hostname != c.Hostname || got.MachineID != c.MachineID || !bytes.Equal(got.Entropy, c.Entropy) || got.MACs[0] != c.MACs[0] {
		t.Fatalf("ParsePodConfig = %+v, %v", got, err)
	}
}

func TestPodConfigRefused(t *testing.T) {
	bad := map[string]func(*PodConfig){
		"short entropy": func(c *PodConfig) { c.Entropy = c.Entropy[:EntropyBytes-1] },
		"machine id":    func(c *PodConfig) { c.MachineID = "4C5F" },
		"hostname":      func(c *PodConfig) { c.Hostname = "a b" },
		"long hostname": func(c *PodConfig) { c.Hostname = strings.Repeat("a", 65) },
		"MAC":           func(c *PodConfig) { c.MACs = []string{"zz"} },
		"no time":       func(c *PodConfig) { c.UnixNano = 0 },
	}
	for name, mutate := range bad {
		c := validPodConfig()
		mutate(&c)
		if _, err := c.Encode(); !errors.Is(err, ErrBadPodConfig) {
			t.Errorf("%s: Encode = %v, want ErrBadPodConfig", name, err)
		}
	}
	if _, err := ParsePodConfig(bytes.Repeat([]byte("x"), MaxPodConfigLine+1)); !errors.Is(err, ErrBadPodConfig) {
		t.Errorf("over-long line: %v", err)
	}
}

func TestDeviceMAC(t *testing.T) {
	if DeviceMAC(0) != "02:00:00:00:00:01" || DeviceMAC(1) == DeviceMAC(0) {
		t.Errorf("DeviceMAC(0)=%s DeviceMAC(1)=%s", DeviceMAC(0), DeviceMAC(1))
	}
}
