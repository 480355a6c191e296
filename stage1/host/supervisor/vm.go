package supervisor

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/cleanup"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hostres"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/memcg"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
	"github.com/stage1-kvm/stage1-kvm/stage1/unixsock"
)

// hostVirtioFSD is where Debian installs virtiofsd for its QEMU.
const hostVirtioFSD = "/usr/lib/qemu/virtiofsd"

// consoleLog, in the pod's VM directory, receives the guest's console
// (unless --debug sends it to stderr).
const consoleLog = "console.log"

// consolePath is the guest console log of the pod.
func (s *session) consolePath() string {
	return filepath.Join(s.o.PodDir, contract.VMDir, consoleLog)
}

// hostEnds are the host ends of the VM's channels: a listening socket per
// virtio-serial port (QEMU connects to each), and the pod's agent socket.
type hostEnds struct {
	listeners map[string]*net.UnixListener
	// greeted is the events port's connection when run has already
	// sent the guest its configuration on it (greetClone).
	greeted net.Conn
	agent   *agentProxy
}

// vmPorts are the ports this pod's VM has: stdin only for an interactive
// app.
func vmPorts(interactive bool) []contract.Port {
	var ports []contract.Port
	for _, p := range contract.Ports {
		if p.Name == contract.StdinPort && !interactive {
			continue
		}
		ports = append(ports, p)
	}
	return ports
}

// openChannels listens on the host end of every port before QEMU starts,
// and serves the pod's agent socket.
func (s *session) openChannels(undo *cleanup.Stack) error {
	s.host.listeners = map[string]*net.UnixListener{}
	for _, p := range vmPorts(s.o.Flags.Interactive) {
		path := filepath.Join(s.o.PodDir, p.Socket)
		os.Remove(path)
		ln, err := unixsock.Listen(path)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", path, err)
		}
		undo.Push("close "+p.Socket, func() error { ln.Close(); os.Remove(path); return nil })
		s.host.listeners[p.Name] = ln
	}
	proxy, err := newAgentProxy(filepath.Join(s.o.PodDir, contract.AgentSocket))
	if err != nil {
		return err
	}
	undo.Push("close the agent socket", func() error { proxy.close(); return nil })
	s.host.agent = proxy
	return nil
}

// vmInput is everything the VM's configuration depends on.
type vmInput struct {
	podDir, stage1Rootfs string
	debug                bool
	accel                qemu.Accel
	memoryMiB, cpus      int
	tcgBufferMiB         int
	hostQEMU             string // empty: the bundled QEMU
	kernelArgs           []string
	ports                []contract.Port
	taps                 []qemu.Tap
	shares               []qemu.Share
}

// vmConfig describes the pod's VM (before virtiofs is set up, which
// startVirtioFSDs does). It is pure.
func vmConfig(in vmInput) qemu.Config {
	bin := qemu.Bundled(in.stage1Rootfs)
	if in.hostQEMU != "" {
		// A host QEMU comes with the host's virtiofsd (Debian's place),
		// and is confined by our jailer all the same.
		bin = qemu.Binary{Path: in.hostQEMU, VirtioFSD: hostVirtioFSD, Jailer: filepath.Join(in.stage1Rootfs, contract.Jailer)}
	}
	// Nothing of the pod on the kernel's command line: a template's is
	// every clone's (the pod's own configuration is podConfig).
	cmdline := append(qemu.TSCArgs(in.accel, bin), in.kernelArgs...)
	cfg := qemu.Config{
		Binary:    bin,
		Accel:     in.accel,
		Kernel:    filepath.Join(in.stage1Rootfs, contract.Kernel),
		Image:     filepath.Join(in.stage1Rootfs, contract.GuestImage),
		Cmdline:   qemu.KernelCmdline(contract.BootTarget, in.accel, in.debug, cmdline...),
		MemoryMiB: in.memoryMiB,
		CPUs:      in.cpus,
		TBSizeMiB: in.tcgBufferMiB,
		Console:   filepath.Join(in.podDir, contract.VMDir, consoleLog),
		Shares:    in.shares,
		QMPSocket: filepath.Join(in.podDir, contract.QMPSocket),
		// How gc and stop know the pod's QEMU (hostres.QEMUPid).
		Name: hostres.QEMUName(in.podDir),
	}
	if in.debug {
		cfg.Console = "/proc/self/fd/2"
		cfg.ConsoleAppend = true
	}
	// Every pod's devices have the same addresses; the guest sets the
	// pod's (podConfig).
	for i, t := range in.taps {
		cfg.Taps = append(cfg.Taps, qemu.Tap{File: t.File, MAC: contract.DeviceMAC(i)})
	}
	for _, p := range in.ports {
		cfg.Ports = append(cfg.Ports, qemu.Port{Name: p.Name, Socket: filepath.Join(in.podDir, p.Socket)})
	}
	return cfg
}

// vmInput gathers what the earlier steps found.
func (s *session) vmInput(accel qemu.Accel) vmInput {
	in := vmInput{
		podDir: s.o.PodDir, stage1Rootfs: s.pod.Stage1Rootfs,
		debug: s.o.Flags.Debug, accel: accel,
		memoryMiB: s.size.MemoryMiB, cpus: s.size.CPUs,
		tcgBufferMiB: s.o.Settings.TCGBufferMiB, hostQEMU: s.o.Settings.QEMU,
		kernelArgs: s.o.Settings.KernelArgs,
		ports:      vmPorts(s.o.Flags.Interactive),
		taps:       s.net.taps,
	}
	in.shares = []qemu.Share{{Tag: contract.PodTag, Path: filepath.Join(s.o.PodDir, contract.ShareDir)}}
	return in
}

// startVM chooses the accelerator, starts virtiofsd where asked, then QEMU.
func (s *session) startVM(undo *cleanup.Stack) error {
	accel, notice, err := qemu.ChooseAccel(s.o.Settings.Accel, hypervisor.ProbeHost())
	if err != nil {
		return err
	}
	if notice != "" {
		s.warnf("%s", notice)
	}
	s.accel = accel
	cfg := vmConfig(s.vmInput(accel))
	tags, err := s.startVirtioFSDs(undo, cfg.Binary, cfg.Shares)
	if err != nil {
		return err
	}
	if len(tags) > 0 {
		cfg.Cmdline = append(cfg.Cmdline, contract.VirtiofsParam+"="+strings.Join(tags, ","))
	}
	// QEMU serves QMP on a socket hypervisor.Start makes, which stays
	// when QEMU exits; pushed first, this runs after the VM is gone.
	undo.Push("remove the QMP socket", func() error {
		if err := os.Remove(cfg.QMPSocket); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	})
	// Pushed before QEMU starts, this runs once it is gone.
	undo.Push("remove the jail directory", func() error { return hostres.RemoveJail(s.o.PodDir) })
	cfg.Cgroup = s.boundMemory(undo, cfg)
	s.logf("VM: %s, %d MiB, %d vCPU(s)", accel, cfg.MemoryMiB, cfg.CPUs)
	vm := s.startFromTemplate(cfg)
	if vm == nil {
		s.timer.markQEMU()
		s.timer.markStart("cold", 0, 0, 0)
		if vm, err = hypervisor.Start(cfg, filepath.Join(s.o.PodDir, contract.JailDir), s.o.Stderr); err != nil {
			return err
		}
	}
	s.vm = vm
	undo.Push("stop the VM", vm.Kill)
	if err := hostres.WriteQEMUPid(s.o.PodDir, vm.Pid()); err != nil {
		return err
	}
	undo.Push("forget the QEMU pid", func() error { return hostres.KillQEMU(s.o.PodDir) })
	return nil
}

// boundMemory makes the pod's memory cgroup, which QEMU joins before it
// runs (memcg): guest RAM, TCG's translation cache and memcg.OverheadMiB.
// It returns its directory, or "" when the host gives the pod none (QEMU
// is then bounded by run's own cgroup only; said in the debug log).
// Pushed before QEMU starts, its removal runs once QEMU is gone.
func (s *session) boundMemory(undo *cleanup.Stack, cfg qemu.Config) string {
	tcg := 0
	if cfg.Accel == qemu.TCG {
		if cfg.TBSizeMiB == 0 {
			// QEMU's default cache is sized from the host's memory.
			s.logf("QEMU's memory is not bounded: no TCG cache size")
			return ""
		}
		tcg = cfg.TBSizeMiB
	}
	want := memcg.LimitBytes(cfg.MemoryMiB, tcg)
	g, limit, err := hostres.CreateMemcg(s.o.PodDir, want)
	if err == nil && limit < want {
		s.memoryShort = fmt.Sprintf("run's memory cgroup leaves the VM %d MiB of the %d MiB it may use", limit>>20, want>>20)
		s.logf("QEMU's memory is bounded below its VM's size: %s", s.memoryShort)
	}
	if errors.Is(err, memcg.ErrUnavailable) {
		s.logf("QEMU's memory is not bounded on its own: %v", err)
		return ""
	} else if err != nil {
		s.warnf("QEMU's memory is not bounded on its own: %v", err)
		return ""
	}
	undo.Push("remove the memory cgroup", func() error { return hostres.RemoveMemcg(s.o.PodDir) })
	return g.Dir
}

// startVirtioFSDs switches the writable shares (the pod share) to virtiofs
// when that is the transport asked for, and starts a virtiofsd for each,
// undone by undo. It returns the tags of the virtiofs shares.
func (s *session) startVirtioFSDs(undo *cleanup.Stack, bin qemu.Binary, shares []qemu.Share) ([]string, error) {
	if s.o.Settings.SharedFS != qemu.Virtiofs {
		return nil, nil
	}
	var tags []string
	for i := range shares {
		sh := &shares[i]
		if sh.ReadOnly {
			continue
		}
		sh.Transport = qemu.Virtiofs
		sh.Socket = filepath.Join(s.o.PodDir, contract.VirtiofsSocket(i))
		log, err := os.OpenFile(filepath.Join(s.o.PodDir, contract.VMDir, fmt.Sprintf("virtiofsd%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("virtiofsd log: %w", err)
		}
		d, err := hypervisor.StartVirtioFSD(bin, *sh, log)
		log.Close()
		if err != nil {
			return nil, err
		}
		undo.Push("stop virtiofsd for "+sh.Tag, d.Stop)
		s.virtiofsds = append(s.virtiofsds, d)
		s.logf("virtiofs share %s: virtiofsd pid %d", sh.Tag, d.Pid())
		tags = append(tags, sh.Tag)
	}
	return tags, nil
}

// podConfig is what makes the booted guest this pod's (contract.PodConfig),
// sent when QEMU connects to the events port.
func (s *session) podConfig() ([]byte, error) {
	c := contract.PodConfig{
		Hostname: s.o.Flags.PodHostname(),
		// rkt's convention: the machine ID is the pod UUID.
		MachineID: strings.ReplaceAll(s.o.Flags.UUID.String(), "-", ""),
		Entropy:   make([]byte, contract.EntropyBytes),
		UnixNano:  time.Now().UnixNano(),
		Units:     s.guestUnits,
		Accounts:  s.guestAccounts,
		IO:        s.guestIO,
		Net:       &s.net.guest,
	}
	if _, err := rand.Read(c.Entropy); err != nil {
		return nil, fmt.Errorf("entropy for the guest: %w", err)
	}
	for _, t := range s.net.taps {
		c.MACs = append(c.MACs, t.MAC)
	}
	return c.Encode()
}
