package supervisor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/sharetree"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/volumes"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

func portNames(ports []contract.Port) []string {
	var names []string
	for _, p := range ports {
		names = append(names, p.Name)
	}
	return names
}

func TestVMPorts(t *testing.T) {
	base := []string{contract.EventsPort, contract.StdoutPort, contract.StderrPort, contract.AgentPort}
	if got := portNames(vmPorts(false)); !slices.Equal(got, base) {
		t.Errorf("vmPorts(false) = %q, want %q", got, base)
	}
	want := []string{contract.EventsPort, contract.StdoutPort, contract.StderrPort, contract.StdinPort, contract.AgentPort}
	if got := portNames(vmPorts(true)); !slices.Equal(got, want) {
		t.Errorf("vmPorts(true) = %q, want %q", got, want)
	}
}

func testInput() vmInput {
	return vmInput{
		podDir: "/var/lib/rkt/pods/run/u", stage1Rootfs: "/var/lib/rkt/pods/run/u/stage1/rootfs",
		accel: qemu.TCG, memoryMiB: 160, cpus: 1, tcgBufferMiB: 32,
		kernelArgs: []string{"systemd.log_level=debug"},
		ports:      vmPorts(true),
		shares:     []qemu.Share{{Tag: "pod", Path: "/var/lib/rkt/pods/run/u/vm/share"}, {Tag: "extra", Path: "/srv/data", ReadOnly: true}},
	}
}

func TestVMConfig(t *testing.T) {
	c := vmConfig(testInput())
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Binary.Path != "/var/lib/rkt/pods/run/u/stage1/rootfs/qemu/bin/qemu-system-x86_64" {
		t.Errorf("binary %q, want the bundled QEMU", c.Binary.Path)
	}
	if c.Kernel != "/var/lib/rkt/pods/run/u/stage1/rootfs/bzImage" || c.Image != "/var/lib/rkt/pods/run/u/stage1/rootfs/guest.img" {
		t.Errorf("kernel %q image %q", c.Kernel, c.Image)
	}
	cmdline := strings.Join(c.Cmdline, " ")
	for _, want := range []string{"systemd.unit=stage1-boot.target", "systemd.log_level=debug", "quiet", "tsc_early_khz=1000000"} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("kernel command line lacks %q: %s", want, cmdline)
		}
	}
	// A template's command line is every clone's: nothing of the pod.
	for _, not := range []string{"hostname", "machine_id"} {
		if strings.Contains(cmdline, not) {
			t.Errorf("kernel command line has the pod's %s: %s", not, cmdline)
		}
	}
	if !strings.HasSuffix(cmdline, "systemd.log_level=debug") {
		t.Errorf("extra kernel arguments must come last: %s", cmdline)
	}
	if len(c.Shares) != 2 || c.Shares[0].Tag != contract.PodTag || c.Shares[1].Tag != "extra" || !c.Shares[1].ReadOnly {
		t.Errorf("shares %+v: want the shares given, in order", c.Shares)
	}
	if len(c.Ports) != 5 || c.Ports[0].Socket != "/var/lib/rkt/pods/run/u/vm/events.sock" {
		t.Errorf("ports %+v", c.Ports)
	}
	if c.Console != "/var/lib/rkt/pods/run/u/vm/console.log" || c.QMPSocket != "/var/lib/rkt/pods/run/u/vm/qmp.sock" || c.TBSizeMiB != 32 {
		t.Errorf("console %q, QMP %q, tb %d", c.Console, c.QMPSocket, c.TBSizeMiB)
	}
}

func TestVMConfigDebugAndHostQEMU(t *testing.T) {
	in := testInput()
	in.debug = true
	in.hostQEMU = "/usr/bin/qemu-system-x86_64"
	c := vmConfig(in)
	if c.Console != "/proc/self/fd/2" || !c.ConsoleAppend {
		t.Errorf("--debug: console %q append %v, want run's stderr", c.Console, c.ConsoleAppend)
	}
	if strings.Contains(strings.Join(c.Cmdline, " "), "quiet") {
		t.Errorf("--debug: the kernel should not be quiet: %q", c.Cmdline)
	}
	if c.Binary.Path != in.hostQEMU || c.Binary.VirtioFSD != hostVirtioFSD || c.Binary.DataDir != "" {
		t.Errorf("host QEMU binary %+v", c.Binary)
	}
	// Its TSC is the host's, at a rate the guest must calibrate.
	if strings.Contains(strings.Join(c.Cmdline, " "), "tsc") {
		t.Errorf("host QEMU: TSC arguments meant for ours: %q", c.Cmdline)
	}
}

func TestShareEntries(t *testing.T) {
	pod := "/var/lib/rkt/pods/run/u"
	root := pod + "/stage1/rootfs"
	entries := shareEntries(shareInput{
		podDir: pod, stage1Rootfs: root, apps: []string{"web", "db"}, emptyVolumes: true,
		volumes: []volumes.Share{{Name: "data", HostPath: "/srv/data", ReadOnly: true}, {Name: "flat", HostPath: "/srv/flat"}},
	})
	want := []sharetree.Entry{
		{Path: "config", Source: pod + "/vm/config", ReadOnly: true},
		{Path: "opt/stage2/web/rootfs", Source: root + "/opt/stage2/web/rootfs", Recursive: true},
		{Path: "opt/stage2/db/rootfs", Source: root + "/opt/stage2/db/rootfs", Recursive: true},
		{Path: "journal", Source: root + "/var/log/journal"},
		{Path: "volumes", Source: root + "/volumes"},
		{Path: "host/data", Source: "/srv/data", ReadOnly: true},
		{Path: "host/flat", Source: "/srv/flat"},
	}
	if !slices.Equal(entries, want) {
		t.Fatalf("entries\n%+v\nwant\n%+v", entries, want)
	}
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
		// The stage1's own files (gc, stop, QEMU, the CNI plugins, the
		// kernel) are in the stage1 rootfs: no entry may be it or hold it.
		if rel, err := filepath.Rel(e.Source, root); err == nil && !strings.HasPrefix(rel, "..") {
			t.Errorf("entry %s binds %s, which holds the stage1 rootfs", e.Path, e.Source)
		}
	}
	if got := shareEntries(shareInput{podDir: pod, stage1Rootfs: root, apps: []string{"a"}}); len(got) != 3 {
		t.Errorf("without volumes: %+v, want config, the app, the journal", got)
	}
}

// A hostile guest's event stream: over-long lines are skipped without
// being buffered, and the events after them still arrive.
func TestReadEventsBounded(t *testing.T) {
	host, guest := net.Pipe()
	ch := &channels{conns: map[string]chan net.Conn{"ev": make(chan net.Conn, 1)}}
	ch.conns["ev"] <- host
	var skipped []error
	var mu sync.Mutex
	evc := ch.readEvents("ev", func() ([]byte, error) { return nil, nil }, func(err error) { mu.Lock(); skipped = append(skipped, err); mu.Unlock() })
	go func() {
		io.WriteString(guest, "ready\n")
		io.WriteString(guest, strings.Repeat("x", 10*maxEventLine)+"\n")
		io.WriteString(guest, "exited web 3\n")
		io.WriteString(guest, "bogus event\n")
		guest.Close()
	}()
	var got []contract.Event
	for e := range evc {
		got = append(got, e)
	}
	ch.wait()
	if len(got) != 2 || got[0].Kind != contract.EventReady || got[1].Kind != contract.EventExited || got[1].Status != 3 {
		t.Errorf("events %+v", got)
	}
	if len(skipped) != 2 || !errors.Is(skipped[0], errLongLine) {
		t.Errorf("skipped %v, want the long line then the bogus one", skipped)
	}
}

// The host acknowledges the guest's output-end only once its copies have
// passed on the counted bytes, and reports a shortfall as ErrOutputLost.
func TestOutputAck(t *testing.T) {
	outHost, outGuest := net.Pipe()
	errHost, errGuest := net.Pipe()
	ch := &channels{conns: map[string]chan net.Conn{
		contract.StdoutPort: make(chan net.Conn, 1),
		contract.StderrPort: make(chan net.Conn, 1),
	}, outs: map[string]*outCopy{}}
	ch.conns[contract.StdoutPort] <- outHost
	ch.conns[contract.StderrPort] <- errHost
	var stdout, stderr strings.Builder
	ch.copyOut(contract.StdoutPort, &stdout)
	ch.copyOut(contract.StderrPort, &stderr)

	end := contract.Event{Kind: contract.EventOutputEnd, StdoutBytes: 5, StderrBytes: 3}
	done := make(chan struct{})
	go ch.ackOutput(end, done, 10*time.Second)
	io.WriteString(outGuest, "hello")
	acked := make(chan string, 1)
	go func() {
		b := make([]byte, len(contract.OutputAck))
		io.ReadFull(outGuest, b)
		acked <- string(b)
	}()
	select {
	case <-acked:
		t.Fatal("acknowledged before stderr's bytes were passed on")
	case <-time.After(100 * time.Millisecond):
	}
	io.WriteString(errGuest, "err")
	select {
	case got := <-acked:
		if got != contract.OutputAck {
			t.Errorf("ack %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no acknowledgement once every byte was passed on")
	}
	outGuest.Close()
	errGuest.Close()
	ch.wait()
	close(done)
	if err := ch.outputLoss(end); err != nil {
		t.Errorf("outputLoss = %v after every byte arrived", err)
	}
	more := end
	more.StderrBytes = 10
	if err := ch.outputLoss(more); !errors.Is(err, ErrOutputLost) || !strings.Contains(err.Error(), "3 of the 10 bytes") {
		t.Errorf("outputLoss = %v, want ErrOutputLost naming 3 of the 10 bytes", err)
	}
}

func TestConsoleExcerpt(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	plain := consoleExcerpt(b.String())
	if len(plain) != consoleLines || plain[0] != "line 26" || plain[len(plain)-1] != "line 40" {
		t.Errorf("without a panic: %q, want the last %d lines", plain, consoleLines)
	}
	panicked := "boot\n[ 4.2] Kernel panic - not syncing: sysrq triggered crash\n" + b.String()
	got := consoleExcerpt(panicked)
	if len(got) != consoleLines || !strings.Contains(got[0], "Kernel panic - not syncing") {
		t.Errorf("with a panic: %q, want %d lines from the panic line", got, consoleLines)
	}
	if got := consoleExcerpt("only line\n"); len(got) != 1 || got[0] != "only line" {
		t.Errorf("one line: %q", got)
	}
}
