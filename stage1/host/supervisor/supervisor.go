// Package supervisor is the run entry point's work: it turns the pod that
// stage0 prepared into a VM, supervises it, relays the apps' standard streams
// and exit statuses, and leaves nothing behind when it is done.
package supervisor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema/types"
	"golang.org/x/term"

	"github.com/stage1-kvm/stage1-kvm/stage1/agentproto"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/guest"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/cleanup"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hostres"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/pod"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/runflags"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/volumes"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/sizing"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/units"
)

// Environment knobs (documented in README.md).
const (
	// QEMUEnv points at a host QEMU to use instead of the bundled one.
	QEMUEnv = "STAGE1_KVM_QEMU"
	// KernelArgsEnv appends arguments to the guest kernel command line
	// (for debugging, e.g. systemd.log_level=debug).
	KernelArgsEnv = "STAGE1_KVM_KERNEL_ARGS"
	// BootTimeoutEnv overrides how long the guest may take to start the
	// apps (a Go duration, e.g. 90s).
	BootTimeoutEnv = "STAGE1_KVM_BOOT_TIMEOUT"
	// TCGBufferEnv overrides the size in MiB of QEMU's TCG translation
	// cache (tcgBufferMiB): smaller saves host memory, larger saves
	// retranslation. Ignored under KVM.
	TCGBufferEnv = "STAGE1_KVM_TCG_BUFFER_MIB"
	// SharedFSEnv picks how the pod's directory and its writable host
	// volumes reach the guest: "9p" (the default) or "virtiofs".
	SharedFSEnv = "STAGE1_KVM_SHARED_FS"
)

// Default boot bounds: a healthy TCG boot here takes 1-4 s, a KVM boot well
// under 1 s; the bound only has to end hopeless cases (e.g. a host whose KVM
// cannot run our kernel) instead of hanging forever.
const (
	bootTimeoutTCG = 120 * time.Second
	bootTimeoutKVM = 30 * time.Second
	// tcgBufferMiB bounds QEMU's TCG translation cache: QEMU's default
	// dominates an idle guest's host memory.
	tcgBufferMiB = 32
	// StopTimeout bounds an orderly stop (SIGTERM to run): the guest powers
	// off, apps get SIGTERM (each has TimeoutStopSec=10s before SIGKILL),
	// post-stop handlers run. Past it, the VM is killed.
	StopTimeout = 30 * time.Second
	// drainTimeout bounds reading the apps' last output after QEMU exits.
	drainTimeout = 5 * time.Second
	// qmpTimeout bounds one QMP exchange with QEMU.
	qmpTimeout = 5 * time.Second
	// settleDelay is how long after the guest reports its boot over that
	// the boot's translated code is dropped: the notifier itself (a Go
	// program) and systemd's end-of-boot work still run for a few hundred
	// ms, and code they translate after the flush would stay. Measured on
	// an idle pod: 0 s keeps ~10 MiB of translations, 1 s ~1 MiB, 3 s the same.
	settleDelay = time.Second
)

// Options is what the run entry point was given.
type Options struct {
	// Started is when the run process started (for the timings file).
	Started time.Time
	PodDir  string
	Flags   *runflags.Options
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// Run boots and supervises the pod and returns its exit code.
func Run(o Options) (code int, err error) {
	var undo cleanup.Stack
	defer func() {
		if uerr := undo.Unwind(); uerr != nil {
			fmt.Fprintf(o.Stderr, "stage1: cleanup: %v\n", uerr)
		}
	}()
	s := &session{o: o, debug: o.Flags.Debug, timer: &timer{start: o.Started}}
	if s.timer.start.IsZero() {
		s.timer.start = time.Now()
	}
	for _, step := range []struct {
		name string
		do   func(*cleanup.Stack) error
	}{
		{"keep the pod lock", s.keepLock},
		{"load the pod", s.loadPod},
		{"prepare volumes", s.prepareVolumes},
		{"set up the network", s.setupNetwork},
		{"write units", s.writeUnits},
		{"open host channels", s.openChannels},
		{"start the VM", s.startVM},
		{"write the pid file", s.writePid},
	} {
		if err := step.do(&undo); err != nil {
			return 0, fmt.Errorf("%s: %w", step.name, err)
		}
	}
	return s.supervise()
}

type session struct {
	o     Options
	debug bool
	pod   *pod.Pod
	size  sizing.Size
	vmDir string
	// taps are the pod's network interfaces (network.go).
	taps []hypervisor.Tap
	// mdsURL is the apps' AC_METADATA_URL with --mds-token (network.go).
	mdsURL string
	// volumes are the pod's volumes, ready for the VM.
	volumes *volumes.Prepared

	// tty: --interactive with a terminal on stdin; the app gets a guest
	// terminal of that size, relayed raw.
	tty        bool
	rows, cols int

	listeners map[string]*net.UnixListener
	agent     *agentProxy
	accel     hypervisor.Accel
	vm        *hypervisor.VM
	console   string
	timer     *timer
}

func (s *session) logf(format string, args ...any) {
	if s.debug {
		fmt.Fprintf(s.o.Stderr, "stage1: "+format+"\n", args...)
	}
}

// keepLock keeps rkt's pod lock for the pod's whole life: the fd is inherited
// locked; it only must not leak into QEMU.
func (s *session) keepLock(*cleanup.Stack) error {
	v := os.Getenv("RKT_LOCK_FD")
	if v == "" {
		s.logf("no RKT_LOCK_FD: not started by rkt")
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		return fmt.Errorf("bad RKT_LOCK_FD %q", v)
	}
	syscall.CloseOnExec(fd)
	return nil
}

func (s *session) loadPod(*cleanup.Stack) error {
	p, err := pod.Load(s.o.PodDir)
	if err != nil {
		return err
	}
	s.pod = p
	if s.o.Flags.Interactive && len(p.Apps) != 1 {
		return fmt.Errorf("--interactive needs a pod with exactly one app, this one has %d", len(p.Apps))
	}
	if f, ok := s.o.Stdin.(*os.File); ok && s.o.Flags.Interactive && term.IsTerminal(int(f.Fd())) {
		s.tty = true
		s.cols, s.rows, _ = term.GetSize(int(f.Fd()))
	}
	apps := make([]types.App, len(p.Apps))
	for i, a := range p.Apps {
		apps[i] = a.App
	}
	if s.size, err = sizing.VMSize(apps, runtime.NumCPU()); err != nil {
		return err
	}
	return nil
}

func (s *session) writeUnits(undo *cleanup.Stack) error {
	in := units.Pod{Interactive: s.o.Flags.Interactive, TTY: s.tty, Rows: s.rows, Cols: s.cols}
	in.DisableCapabilities = s.o.Flags.DisableCaps
	in.DisableSeccomp = s.o.Flags.DisableSeccomp
	in.DisablePaths = s.o.Flags.DisablePaths
	for _, a := range s.pod.Apps {
		in.Apps = append(in.Apps, units.App{
			Name:           a.Name,
			ImageName:      a.Image.Name.String(),
			App:            a.App,
			RootfsHost:     a.RootfsHost,
			ReadOnlyRootFS: a.ReadOnlyRootFS,
			MetadataURL:    s.mdsURL,
		})
		for _, b := range s.volumes.Binds[a.Name] {
			in.Apps[len(in.Apps)-1].Binds = append(in.Apps[len(in.Apps)-1].Binds, units.Bind(b))
		}
	}
	files, err := units.Generate(in)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.pod.Stage1Rootfs, guest.UnitsDir)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Content, 0o644); err != nil {
			return err
		}
	}
	// The apps' environments, where rkt keeps them, for enter.
	envDir := filepath.Join(s.pod.Stage1Rootfs, "rkt", "env")
	if err := os.MkdirAll(envDir, 0o755); err != nil {
		return err
	}
	for _, a := range in.Apps {
		if err := os.WriteFile(filepath.Join(envDir, a.Name), contract.EncodeEnv(units.AppEnvironment(a)), 0o600); err != nil {
			return err
		}
	}
	passwd, group, err := units.Accounts(in)
	if err != nil {
		return err
	}
	acc := filepath.Join(s.pod.Stage1Rootfs, guest.AccountsDir)
	if err := os.MkdirAll(acc, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(acc, "passwd"), passwd, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(acc, "group"), group, 0o644); err != nil {
		return err
	}
	// The journal persists in the pod, where rkt's tools look for it.
	return os.MkdirAll(filepath.Join(s.pod.Stage1Rootfs, guest.JournalDir), 0o755)
}

// prepareVolumes matches the pod's volumes to the apps' mount points,
// checks host sources, creates empty volumes and mount targets, and writes
// the guest's list of volume shares.
func (s *session) prepareVolumes(undo *cleanup.Stack) error {
	var apps []volumes.App
	rootfs := map[string]string{}
	for i, a := range s.pod.Apps {
		apps = append(apps, volumes.App{Name: a.Name, MountPoints: a.App.MountPoints, Mounts: s.pod.Manifest.Apps[i].Mounts})
		rootfs[a.Name] = a.RootfsHost
	}
	plan, err := volumes.Resolve(s.pod.Manifest.Volumes, apps)
	if err != nil {
		return err
	}
	s.volumes, err = volumes.Prepare(plan, s.pod.Stage1Rootfs, rootfs)
	if err != nil {
		return err
	}
	for i := range s.volumes.Shares {
		sh := &s.volumes.Shares[i]
		if !sh.HideSubmounts {
			continue
		}
		dst := filepath.Join(s.o.PodDir, contract.VolumeBindsDir, sh.Tag)
		if err := volumes.BindTop(sh.HostPath, dst); err != nil {
			return fmt.Errorf("host volume %q (recursive=false): %w", sh.Name, err)
		}
		undo.Push("unbind volume "+sh.Name, func() error { return volumes.Unbind(dst) })
		s.logf("volume %s: recursive=false, exporting a non-recursive bind of %s", sh.Name, sh.HostPath)
		sh.HostPath = dst
	}
	return nil
}

// Host ends of the guest's ports, relative to the pod directory (the cwd of
// both us and QEMU, which keeps socket paths short).
var channelPorts = []struct{ name, socket string }{
	{guest.EventsPort, "events.sock"},
	{guest.StdoutPort, "stdout.sock"},
	{guest.StderrPort, "stderr.sock"},
	{guest.StdinPort, "stdin.sock"},
	{guest.AgentPort, "agent.sock"},
	{ttyPort, "tty.sock"},
}

// ttyPort is the virtio console (the guest's /dev/hvc0) of a terminal app.
const ttyPort = "org.stage1-kvm.tty"

func (s *session) openChannels(undo *cleanup.Stack) error {
	s.vmDir = filepath.Join(s.o.PodDir, "vm")
	if err := os.MkdirAll(s.vmDir, 0o700); err != nil {
		return err
	}
	s.listeners = map[string]*net.UnixListener{}
	for _, c := range channelPorts {
		if c.name == guest.StdinPort && (!s.o.Flags.Interactive || s.tty) {
			continue
		}
		if c.name == ttyPort && !s.tty {
			continue
		}
		path := filepath.Join(s.vmDir, c.socket)
		os.Remove(path)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			return fmt.Errorf("listen on %s: %w", path, err)
		}
		ln.SetUnlinkOnClose(true)
		undo.Push("close "+c.socket, func() error { ln.Close(); return nil })
		s.listeners[c.name] = ln
	}
	agent, err := newAgentProxy(filepath.Join(s.o.PodDir, contract.AgentSocket))
	if err != nil {
		return err
	}
	undo.Push("close the agent socket", func() error { agent.close(); return nil })
	s.agent = agent
	return nil
}

// hostVirtioFSD is where Debian installs virtiofsd for its QEMU.
const hostVirtioFSD = "/usr/lib/qemu/virtiofsd"

// sharedFS is the transport for a SharedFSEnv setting ("" for the default).
func sharedFS(setting string) (hypervisor.Transport, error) {
	switch t := hypervisor.Transport(setting); t {
	case "", hypervisor.NineP:
		return hypervisor.NineP, nil
	case hypervisor.Virtiofs:
		return t, nil
	}
	return "", fmt.Errorf("%s=%q: want 9p or virtiofs", SharedFSEnv, setting)
}

// startVirtioFSDs switches the writable shares to virtiofs when that is the
// transport asked for (read-only volumes stay on 9p, where QEMU enforces
// read-only; virtiofsd cannot) and starts a virtiofsd for each, undone by
// undo. It returns the tags of the virtiofs shares.
func (s *session) startVirtioFSDs(undo *cleanup.Stack, bin hypervisor.Binary, t hypervisor.Transport, shares []hypervisor.Share) ([]string, error) {
	if t != hypervisor.Virtiofs {
		return nil, nil
	}
	var tags []string
	for i := range shares {
		sh := &shares[i]
		if sh.ReadOnly {
			continue
		}
		sh.Transport = hypervisor.Virtiofs
		sh.Socket = filepath.Join(s.o.PodDir, contract.VirtiofsSocket(i))
		log, err := os.OpenFile(filepath.Join(s.vmDir, fmt.Sprintf("virtiofsd%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("virtiofsd log: %w", err)
		}
		d, err := hypervisor.StartVirtioFSD(bin, *sh, log)
		log.Close()
		if err != nil {
			return nil, err
		}
		undo.Push("stop virtiofsd for "+sh.Tag, d.Stop)
		s.logf("virtiofs share %s: virtiofsd pid %d", sh.Tag, d.Pid())
		tags = append(tags, sh.Tag)
	}
	return tags, nil
}

// tcgBufferSize is the TCG translation cache size for a TCGBufferEnv
// setting ("" for the default).
func tcgBufferSize(setting string) (int, error) {
	if setting == "" {
		return tcgBufferMiB, nil
	}
	n, err := strconv.Atoi(setting)
	if err != nil || n < 1 || n > 2048 {
		return 0, fmt.Errorf("%s=%q: want a size in MiB from 1 to 2048", TCGBufferEnv, setting)
	}
	return n, nil
}

func (s *session) startVM(undo *cleanup.Stack) error {
	accel, notice, err := hypervisor.ChooseAccel(os.Getenv(hypervisor.AccelEnv), hypervisor.ProbeHost())
	if err != nil {
		return err
	}
	if notice != "" {
		fmt.Fprintf(s.o.Stderr, "stage1: %s\n", notice)
	}
	s.accel = accel
	tbSize, err := tcgBufferSize(os.Getenv(TCGBufferEnv))
	if err != nil {
		return err
	}
	transport, err := sharedFS(os.Getenv(SharedFSEnv))
	if err != nil {
		return err
	}
	bin := hypervisor.Bundled(s.pod.Stage1Rootfs)
	if q := os.Getenv(QEMUEnv); q != "" {
		// A host QEMU comes with the host's virtiofsd (Debian's place).
		bin = hypervisor.Binary{Path: q, VirtioFSD: hostVirtioFSD}
	}
	uuid := s.o.Flags.UUID.String()
	hostname := s.o.Flags.Hostname
	if hostname == "" {
		hostname = "rkt-" + uuid
	}
	cmdlineExtra := []string{
		"systemd.hostname=" + hostname,
		// rkt's convention: the machine ID is the pod UUID.
		"systemd.machine_id=" + strings.ReplaceAll(uuid, "-", ""),
	}
	if extra := strings.Fields(os.Getenv(KernelArgsEnv)); len(extra) > 0 {
		cmdlineExtra = append(cmdlineExtra, extra...)
	}
	s.console = filepath.Join(s.vmDir, "console.log")
	cfg := hypervisor.Config{
		Binary:    bin,
		Accel:     accel,
		Kernel:    filepath.Join(s.pod.Stage1Rootfs, contract.Kernel),
		Image:     filepath.Join(s.pod.Stage1Rootfs, contract.GuestImage),
		Cmdline:   hypervisor.KernelCmdline("stage1-pod.target", accel, s.debug, cmdlineExtra...),
		MemoryMiB: s.size.MemoryMiB,
		CPUs:      s.size.CPUs,
		TBSizeMiB: tbSize,
		Console:   s.console,
		Shares:    []hypervisor.Share{{Tag: guest.PodTag, Path: s.pod.Stage1Rootfs}},
		Taps:      s.taps,
		QMPSocket: filepath.Join(s.o.PodDir, contract.QMPSocket),
	}
	for _, v := range s.volumes.Shares {
		cfg.Shares = append(cfg.Shares, hypervisor.Share{Tag: v.Tag, Path: v.HostPath, ReadOnly: v.ReadOnly})
	}
	tags, err := s.startVirtioFSDs(undo, bin, transport, cfg.Shares)
	if err != nil {
		return err
	}
	if len(tags) > 0 {
		cfg.Cmdline = append(cfg.Cmdline, guest.VirtiofsParam+"="+strings.Join(tags, ","))
	}
	if s.debug {
		cfg.Console = "/proc/self/fd/2"
		cfg.ConsoleAppend = true
	}
	for _, c := range channelPorts {
		if _, ok := s.listeners[c.name]; !ok {
			continue
		}
		port := hypervisor.Port{Name: c.name, Socket: filepath.Join(s.vmDir, c.socket)}
		if c.name == ttyPort {
			cfg.Consoles = append(cfg.Consoles, port)
		} else {
			cfg.Ports = append(cfg.Ports, port)
		}
	}
	// QEMU removes its QMP socket when it exits, but not when killed;
	// pushed first, this runs after the VM is gone.
	undo.Push("remove the QMP socket", func() error {
		if err := os.Remove(cfg.QMPSocket); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	})
	s.logf("VM: %s, %d MiB, %d vCPU(s)", accel, cfg.MemoryMiB, cfg.CPUs)
	s.timer.markQEMU()
	vm, err := hypervisor.Start(cfg, s.o.Stderr)
	if err != nil {
		return err
	}
	s.vm = vm
	undo.Push("stop the VM", vm.Kill)
	if err := hostres.WriteQEMUPid(s.o.PodDir, vm.Pid()); err != nil {
		return err
	}
	undo.Push("forget the QEMU pid", func() error { return hostres.KillQEMU(s.o.PodDir) })
	return nil
}

// writePid writes <pod>/pid: rkt shows its mtime as the pod's start time and
// passes the number to enter.
func (s *session) writePid(*cleanup.Stack) error {
	return hostres.WritePidFile(filepath.Join(s.o.PodDir, "pid"), os.Getpid(), 0o644)
}

// bootTimeout bounds how long the guest may take to start the apps.
func (s *session) bootTimeout() time.Duration {
	if v := os.Getenv(BootTimeoutEnv); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	if s.accel == hypervisor.KVM {
		return bootTimeoutKVM
	}
	return bootTimeoutTCG
}

// supervise relays the pod's streams and events until the VM has exited,
// and decides run's exit code.
func (s *session) supervise() (int, error) {
	timeout := s.bootTimeout()
	ch := acceptChannels(s.listeners)
	go s.agent.serve(timeout)
	appStarted := make(chan struct{})
	if s.tty {
		restore, err := s.rawTerminal()
		if err != nil {
			fmt.Fprintf(s.o.Stderr, "stage1: %v\n", err)
		} else {
			defer restore()
		}
		ch.relayTerminal(ttyPort, s.o.Stdin, s.o.Stdout, appStarted)
	}
	ch.copyOut(guest.StdoutPort, s.timer.firstOutput(s.o.Stdout))
	ch.copyOut(guest.StderrPort, s.o.Stderr)
	stdinReady := make(chan struct{})
	ch.feedStdin(guest.StdinPort, s.o.Stdin, stdinReady)
	evc := ch.readEvents(guest.EventsPort, func(err error) { s.logf("ignoring %v", err) })

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	boot := time.NewTimer(timeout)
	defer boot.Stop()

	var exits []contract.Event
	var cause error
	var stopTimer <-chan time.Time
	vmDone := s.vm.Done()
	for vmDone != nil || evc != nil {
		select {
		case e, ok := <-evc:
			if !ok {
				evc = nil
				continue
			}
			boot.Stop()
			s.logf("event: %s", e)
			switch e.Kind {
			case contract.EventReady:
				if appStarted != nil {
					close(appStarted)
					appStarted = nil
				}
				s.timer.markReady(e.KernelMs, e.TotalMs)
				s.timer.write(s.vmDir)
				if err := s.markReady(); err != nil {
					fmt.Fprintf(s.o.Stderr, "stage1: %v\n", err)
				}
			case contract.EventSettled:
				go s.releaseBootMemory()
			case contract.EventAgentReady:
				go s.attachAgent(ch.conn(guest.AgentPort))
			case contract.EventStdinReady:
				if stdinReady != nil {
					close(stdinReady)
					stdinReady = nil
				}
			case contract.EventExited:
				exits = append(exits, e)
			}
		case <-boot.C:
			cause = fmt.Errorf("%w (%v, %s)", ErrBootTimeout, timeout, s.accel)
			s.vm.Kill()
		case sig := <-sigs:
			if stopTimer != nil {
				// A second signal: no more patience.
				cause = fmt.Errorf("killed after a second %v", sig)
				s.vm.Kill()
				continue
			}
			s.logf("got %v: stopping the pod", sig)
			stopTimer = time.After(StopTimeout)
			go s.powerOff()
		case <-stopTimer:
			cause = fmt.Errorf("the orderly stop did not finish within %v", StopTimeout)
			s.vm.Kill()
		case <-vmDone:
			vmDone = nil
			s.agent.close()
			// QEMU is gone: its connections are closed, so the
			// readers end; bound the wait in case one never connected.
			for _, ln := range s.listeners {
				ln.Close()
			}
			ch.abandonAfter(drainTimeout)
		}
	}
	ch.wait()
	s.timer.write(s.vmDir)
	vmErr := s.vm.Wait()
	code, err := PodExit(exits, s.pod.AppNames())
	if err != nil {
		if cause != nil {
			err = fmt.Errorf("%w: %v", err, cause)
		} else if vmErr != nil {
			err = fmt.Errorf("%w: %v", err, vmErr)
		}
		return 0, errors.Join(err, s.consoleHint())
	}
	return code, nil
}

// powerOff asks the guest agent for an orderly power-off, waiting for the
// agent if the guest is still booting. The caller's timer forces the stop if
// this fails or takes too long.
func (s *session) powerOff() {
	c, err := s.agent.open(StopTimeout)
	if err != nil {
		s.logf("orderly stop: %v", err)
		return
	}
	defer c.Close()
	if err := agentproto.Stop(c); err != nil {
		s.logf("orderly stop: %v", err)
	}
}

// releaseBootMemory frees, settleDelay after the guest says its boot is
// over, what QEMU only needed for booting: its copy of the kernel and, under
// TCG, the boot's translated code (tens of MiB that mostly never run
// again). It only saves memory, so a failure (a host QEMU without our
// patches, say) is logged and otherwise ignored.
func (s *session) releaseBootMemory() {
	time.Sleep(settleDelay)
	if err := s.vm.ReleaseBootMemory(qmpTimeout); err != nil {
		s.logf("keeping boot-time memory: %v", err)
		return
	}
	s.logf("released boot-time memory")
}

// attachAgent connects the agent proxy once the guest agent holds its port.
func (s *session) attachAgent(ch chan net.Conn) {
	c, ok := <-ch
	if !ok {
		return
	}
	if err := s.agent.attach(c); err != nil {
		fmt.Fprintf(s.o.Stderr, "stage1: %v\n", err)
	}
}

// rawTerminal puts run's terminal in raw mode: keys, Ctrl-C included, go to
// the app's terminal, whose line discipline handles them.
func (s *session) rawTerminal() (func(), error) {
	f := s.o.Stdin.(*os.File)
	st, err := term.MakeRaw(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("raw terminal: %w", err)
	}
	return func() { term.Restore(int(f.Fd()), st) }, nil
}

// markReady makes `rkt status --wait-ready` return.
func (s *session) markReady() error {
	link := filepath.Join(s.pod.Stage1Rootfs, "rkt", "supervisor-status")
	os.Remove(link)
	return os.Symlink("ready", link)
}

// consoleHint points at the guest console log for a VM that failed.
func (s *session) consoleHint() error {
	if s.debug {
		return nil
	}
	b, err := os.ReadFile(s.console)
	if err != nil || len(b) == 0 {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Errorf("last guest console lines (%s):\n%s", s.console, strings.Join(lines, "\n"))
}
