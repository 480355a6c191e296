package contract

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func validPodConfig() PodConfig {
	return PodConfig{
		Hostname: "rkt-4c5f9d2e-8f0e-4d8c-9b3a-2f6f1c0d7e11", MachineID: "4c5f9d2e8f0e4d8c9b3a2f6f1c0d7e11",
		Entropy: bytes.Repeat([]byte{7}, EntropyBytes), UnixNano: 1, MACs: []string{"0a:58:0a:01:00:02"},
		IO: IOConfig{Apps: []string{"app"}},
	}
}

func TestPodConfigRoundTrip(t *testing.T) {
	c := validPodConfig()
	c.Units = []PodFile{{Name: "app.service", Data: "[Unit]\nDescription=a\n\n[Service]\nExecStart=/bin/a\n"}, {Name: "stage1-pod.target", Data: "[Unit]\n"}}
	c.IO = IOConfig{Apps: []string{"app"}, Interactive: "app", TTY: true}
	c.Accounts = []PodFile{{Name: "passwd", Data: "root:x:0:0::/:/bin/sh\n"}, {Name: "group", Data: "root:x:0:\n"}}
	c.Net = &NetConfig{Interfaces: []NetInterface{{Name: "eth0", MAC: "0a:58:0a:01:00:02", Addresses: []string{"10.1.0.2/24"},
		Routes: []NetRoute{{Dst: "0.0.0.0/0", Gateway: "10.1.0.1"}}}}, Hosts: "127.0.0.1 localhost\n"}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Whatever follows stays in the reader.
	r := bytes.NewReader(append(b, "next"...))
	got, err := ReadPodConfig(r)
	if err != nil || got.Hostname != c.Hostname || got.MachineID != c.MachineID || !bytes.Equal(got.Entropy, c.Entropy) ||
		got.MACs[0] != c.MACs[0] || len(got.Units) != 2 || got.Units[0] != c.Units[0] || len(got.Accounts) != 2 || got.Accounts[1] != c.Accounts[1] {
		t.Fatalf("ReadPodConfig = %+v, %v", got, err)
	}
	if len(got.IO.Apps) != 1 || got.IO.Apps[0] != "app" || got.IO.Interactive != "app" || !got.IO.TTY {
		t.Errorf("I/O = %+v, want %+v", got.IO, c.IO)
	}
	if got.Net == nil || len(got.Net.Interfaces) != 1 || got.Net.Interfaces[0].Routes[0] != c.Net.Interfaces[0].Routes[0] || got.Net.Hosts != c.Net.Hosts {
		t.Errorf("network = %+v, want %+v", got.Net, c.Net)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "next" {
		t.Errorf("ReadPodConfig took what followed: %q left", rest)
	}
}

// What the guest refuses to read: never a hang, never a read past the
// configuration, a bounded allocation.
func TestReadPodConfigRefused(t *testing.T) {
	good, err := validPodConfig().Encode()
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]string{
		"empty":                 "",
		"no length":             "\n{}\n",
		"length not a number":   "x\n{}\n",
		"negative length":       "-2\n{}\n",
		"length over the bound": strconv.Itoa(MaxPodConfig+1) + "\n{}\n",
		"long length line":      strings.Repeat("1", 40),
		"short body":            "100\n{}\n",
		"no newline after":      string(good[:len(good)-1]) + "x",
		"not JSON":              "2\nxx\n",
	} {
		if _, err := ReadPodConfig(strings.NewReader(in)); !errors.Is(err, ErrBadPodConfig) {
			t.Errorf("%s: %v, want ErrBadPodConfig", name, err)
		}
	}
}

func TestPodConfigRefused(t *testing.T) {
	bad := map[string]func(*PodConfig){
		"short entropy":       func(c *PodConfig) { c.Entropy = c.Entropy[:EntropyBytes-1] },
		"machine id":          func(c *PodConfig) { c.MachineID = "4C5F" },
		"hostname":            func(c *PodConfig) { c.Hostname = "a b" },
		"long hostname":       func(c *PodConfig) { c.Hostname = strings.Repeat("a", 65) },
		"MAC":                 func(c *PodConfig) { c.MACs = []string{"zz"} },
		"no time":             func(c *PodConfig) { c.UnixNano = 0 },
		"unit in a directory": func(c *PodConfig) { c.Units = []PodFile{{Name: "../x.service"}} },
		"unit of no kind":     func(c *PodConfig) { c.Units = []PodFile{{Name: "x"}} },
		"account file":        func(c *PodConfig) { c.Accounts = []PodFile{{Name: "shadow"}} },
		"interface's MAC":     func(c *PodConfig) { c.Net = &NetConfig{Interfaces: []NetInterface{{Name: "eth0", MAC: "x"}}} },
		"no I/O":              func(c *PodConfig) { c.IO = IOConfig{} },
		"I/O app in a path":   func(c *PodConfig) { c.IO.Apps = []string{"../a"} },
		"I/O app upper case":  func(c *PodConfig) { c.IO.Apps = []string{"A"} },
		"I/O app twice":       func(c *PodConfig) { c.IO.Apps = []string{"a", "a"} },
		"interactive unknown": func(c *PodConfig) { c.IO.Interactive = "b" },
		"terminal, no app":    func(c *PodConfig) { c.IO.TTY = true },
	}
	for name, mutate := range bad {
		c := validPodConfig()
		mutate(&c)
		if _, err := c.Encode(); !errors.Is(err, ErrBadPodConfig) {
			t.Errorf("%s: Encode = %v, want ErrBadPodConfig", name, err)
		}
	}
	if _, err := ParsePodConfig(bytes.Repeat([]byte("x"), MaxPodConfig+1)); !errors.Is(err, ErrBadPodConfig) {
		t.Errorf("over-long configuration: %v", err)
	}
}

func TestDeviceMAC(t *testing.T) {
	if DeviceMAC(0) != "02:00:00:00:00:01" || DeviceMAC(1) == DeviceMAC(0) {
		t.Errorf("DeviceMAC(0)=%s DeviceMAC(1)=%s", DeviceMAC(0), DeviceMAC(1))
	}
}
