package supervisor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/term"

	"github.com/stage1-kvm/stage1-kvm/stage1/agentproto"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
)

// loop is the supervisor's state while the VM runs: what the guest has
// reported, and why the VM was ended early, if it was.
type loop struct {
	s  *session
	ch *channels
	// evc yields the guest's events; nil once the guest's end closed.
	evc <-chan contract.Event
	// vmDone is closed when QEMU exits; nil once handled.
	vmDone <-chan struct{}
	// fsDone is closed once a virtiofsd has exited (nil: none runs).
	fsDone <-chan struct{}
	boot   *time.Timer
	// stopping fires when an orderly stop has taken too long; nil until
	// a stop is asked for.
	stopping <-chan time.Time
	// stdinReady is closed (and set to nil) on the guest's stdin-ready
	// event.
	stdinReady chan struct{}
	exits      []contract.Event
	// outputEnd is the guest's output-end event; nil until it comes.
	outputEnd *contract.Event
	// done is closed when supervise returns.
	done chan struct{}
	// cause is why we killed the VM, if we did.
	cause error
}

// supervise relays the pod's streams and events until the VM has exited,
// and decides run's exit code.
func (s *session) supervise() (int, error) {
	timeout := s.o.Settings.BootTimeoutFor(s.accel)
	l := &loop{
		s:          s,
		ch:         acceptChannels(s.host.listeners, map[string]net.Conn{contract.EventsPort: s.host.greeted}),
		vmDone:     s.vm.Done(),
		fsDone:     anyDone(s.virtiofsds),
		boot:       time.NewTimer(timeout),
		stdinReady: make(chan struct{}),
		done:       make(chan struct{}),
	}
	defer close(l.done)
	defer l.boot.Stop()
	go s.host.agent.serve(timeout)
	if restore := l.startRelays(); restore != nil {
		defer restore()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for l.vmDone != nil || l.evc != nil {
		select {
		case e, ok := <-l.evc:
			l.onEvent(e, ok)
		case <-l.boot.C:
			l.kill(fmt.Errorf("%w (%v, %s)", ErrBootTimeout, timeout, s.accel))
		case sig := <-sigs:
			l.onSignal(sig)
		case <-l.stopping:
			l.kill(fmt.Errorf("the orderly stop did not finish within %v", StopTimeout))
		case <-l.vmDone:
			l.onVMDone()
		case <-l.fsDone:
			l.onVirtioFSDDone()
		}
	}
	l.ch.wait()
	s.timer.markEnd(endLoop)
	s.timer.write(filepath.Join(s.o.PodDir, contract.VMDir))
	code, err := s.podExit(l.exits, l.cause)
	if err == nil {
		err = l.outputLoss()
	}
	return code, err
}

// outputLoss is ErrOutputLost if the apps' output did not all reach run's
// stdout and stderr: part of what the guest counted is missing, or the
// guest never said it had written it all (its forwarder did not finish).
func (l *loop) outputLoss() error {
	if l.outputEnd == nil {
		return fmt.Errorf("%w: the guest did not report the end of the apps' output", ErrOutputLost)
	}
	return l.ch.outputLoss(*l.outputEnd)
}

// startRelays starts copying between the VM's ports and run's standard
// streams. It returns what restores run's terminal, if it made it raw.
func (l *loop) startRelays() (restore func()) {
	s := l.s
	if s.term.tty {
		// The app's terminal is in the guest; ours only passes keys
		// and output through, untouched.
		r, err := s.rawTerminal()
		if err != nil {
			s.warnf("%v", err)
		}
		restore = r
	}
	l.ch.copyOut(contract.StdoutPort, s.timer.outputTimes(s.o.Stdout))
	l.ch.copyOut(contract.StderrPort, s.o.Stderr)
	l.ch.feedStdin(contract.StdinPort, s.o.Stdin, l.stdinReady)
	greeting := s.podConfig
	if s.host.greeted != nil {
		// Sent already, before the clone resumed.
		greeting = func() ([]byte, error) { return nil, nil }
	}
	l.evc = l.ch.readEvents(contract.EventsPort, greeting, func(err error) { s.logf("ignoring %v", err) })
	return restore
}

// onEvent handles one event from the guest (ok false: the guest's end of
// the events port closed).
func (l *loop) onEvent(e contract.Event, ok bool) {
	if !ok {
		l.evc = nil
		return
	}
	s := l.s
	s.logf("event: %s", e)
	if e.Kind == contract.EventKernelBooted {
		// Not yet a sign the boot will finish: systemd starts now.
		return
	}
	l.boot.Stop()
	switch e.Kind {
	case contract.EventReady:
		s.timer.markReady(e.KernelMs, e.TotalMs)
		s.timer.write(filepath.Join(s.o.PodDir, contract.VMDir))
		if err := s.markReady(); err != nil {
			s.warnf("%v", err)
		}
	case contract.EventSettled:
		go s.releaseBootMemory(l.done)
	case contract.EventAgentReady:
		go s.attachAgent(l.ch.conn(contract.AgentPort))
	case contract.EventStdinReady:
		closeOnce(&l.stdinReady)
	case contract.EventExited:
		l.onExited(e)
	case contract.EventOutputEnd:
		if l.outputEnd != nil {
			s.logf("ignoring a second end of output")
			return
		}
		l.outputEnd = &e
		s.timer.markEnd(endOutput)
		go l.ch.ackOutput(e, l.done, contract.OutputAckTimeout)
	case contract.EventEnded:
		l.onEnded()
	}
}

// onEnded: the guest says every app has ended and everything is on the
// host. If the exits and the end of output it announced did come, the VM
// is stopped at once: a guest shutdown would only cost time. (A guest that
// says so early only cuts its own pod short: run then finds apps without
// an exit status, or output missing, and fails.)
func (l *loop) onEnded() {
	l.s.timer.markEnd(endEnded)
	if l.outputEnd == nil || len(missingExits(l.exits, l.s.pod.AppNames())) > 0 {
		l.s.logf("ignoring an early end: not every app has reported, or the output has not ended")
		return
	}
	l.s.logf("every app has ended: stopping the VM")
	l.s.vm.Kill()
}

// onExited records an app's exit, once per app of the pod: the guest is
// not trusted to name a real app or to report once.
func (l *loop) onExited(e contract.Event) {
	s := l.s
	if !slices.Contains(s.pod.AppNames(), e.App) {
		s.logf("ignoring the exit of unknown app %q", e.App)
		return
	}
	for _, x := range l.exits {
		if x.App == e.App {
			s.logf("ignoring a second exit of app %s", e.App)
			return
		}
	}
	l.exits = append(l.exits, e)
	if len(missingExits(l.exits, s.pod.AppNames())) == 0 {
		s.timer.markEnd(endAppsExited)
	}
	if err := s.writeStatus(e.App, e.Status); err != nil {
		s.warnf("app %s: write its exit status: %v", e.App, err)
	}
}

// onSignal turns the first SIGTERM, SIGINT or SIGHUP into an orderly stop
// (bounded by StopTimeout); a second one kills the VM.
func (l *loop) onSignal(sig os.Signal) {
	if l.stopping != nil {
		l.kill(fmt.Errorf("killed after a second %v", sig))
		return
	}
	l.s.logf("got %v: stopping the pod", sig)
	l.stopping = time.After(StopTimeout)
	go l.s.powerOff()
}

// onVMDone: QEMU is gone, so its connections are closed and the relays
// end; the wait is bounded in case a port was never connected.
func (l *loop) onVMDone() {
	l.s.timer.markEnd(endVMExit)
	l.vmDone = nil
	l.s.host.agent.close()
	for _, ln := range l.s.host.listeners {
		ln.Close()
	}
	l.ch.abandonAfter(drainTimeout)
}

// onVirtioFSDDone: a virtiofsd ended while the VM runs. If it failed, the
// guest's share is gone and its I/O would hang: the VM is killed.
func (l *loop) onVirtioFSDDone() {
	l.fsDone = nil
	for _, d := range l.s.virtiofsds {
		if err := d.Failed(); err != nil {
			l.kill(err)
			return
		}
	}
}

// anyDone is closed once one of ds has exited; nil for none.
func anyDone(ds []*hypervisor.VirtioFSD) <-chan struct{} {
	if len(ds) == 0 {
		return nil
	}
	c := make(chan struct{})
	var once sync.Once
	for _, d := range ds {
		go func() {
			<-d.Done()
			once.Do(func() { close(c) })
		}()
	}
	return c
}

// kill ends the VM at once, for cause.
func (l *loop) kill(cause error) {
	l.cause = cause
	l.s.vm.Kill()
}

// closeOnce closes *c and forgets it, so a repeated event is harmless.
func closeOnce(c *chan struct{}) {
	if *c != nil {
		close(*c)
		*c = nil
	}
}

// podExit is run's result: the pod's exit code by rkt's rules, or why
// there is none (with the VM's own error and the guest console's tail).
func (s *session) podExit(exits []contract.Event, cause error) (int, error) {
	vmErr := s.vm.Wait()
	code, err := PodExit(exits, s.pod.AppNames())
	if err == nil {
		return code, nil
	}
	if cause != nil {
		err = fmt.Errorf("%w: %v", err, cause)
	} else if vmErr != nil {
		err = fmt.Errorf("%w: %v", err, vmErr)
	}
	// QEMU exits on its own when a virtiofsd dies under it: say why.
	for _, d := range s.virtiofsds {
		if fsErr := d.Failed(); fsErr != nil && !errors.Is(cause, hypervisor.ErrVirtioFSDExited) {
			err = fmt.Errorf("%w; %v", err, fsErr)
		}
	}
	if hint := s.consoleHint(); hint != nil {
		all := multierror.Append(err, hint)
		all.ErrorFormat = linePerError
		return 0, all
	}
	return 0, err
}

// linePerError formats an error and its hints a line (or paragraph) each.
func linePerError(errs []error) string {
	lines := make([]string, len(errs))
	for i, err := range errs {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// powerOff asks the guest agent for an orderly power-off, waiting for the
// agent if the guest is still booting. The loop's timer forces the stop if
// this fails or takes too long.
func (s *session) powerOff() {
	c, err := s.host.agent.open(StopTimeout)
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
// again); lateFlushDelay later it drops the translations of the boot's
// aftermath too, unless the pod has ended (done), and from then on it
// trims what the guest translates for one-off work (trimTranslations).
// It only saves memory, so a failure (a host QEMU without our patches,
// say) is logged and otherwise ignored.
func (s *session) releaseBootMemory(done <-chan struct{}) {
	time.Sleep(settleDelay)
	if err := s.vm.ReleaseBootMemory(qmpTimeout); err != nil {
		s.logf("keeping boot-time memory: %v", err)
		return
	}
	s.logf("released boot-time memory")
	select {
	case <-done:
		return
	case <-time.After(lateFlushDelay):
	}
	if err := s.vm.FlushTranslations(qmpTimeout); err != nil {
		s.logf("keeping the boot's late translations: %v", err)
		return
	}
	s.logf("released the boot's late translations")
	s.trimTranslations(done)
}

// attachAgent connects the agent proxy once the guest agent holds its port.
func (s *session) attachAgent(ch chan net.Conn) {
	c, ok := <-ch
	if !ok {
		return
	}
	if err := s.host.agent.attach(c); err != nil {
		s.warnf("%v", err)
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

// consoleTail bounds what is read of the guest console log (the guest
// writes it, as much as it likes): its last lines are all that is shown.
const consoleTail = 64 << 10

// consoleHint points at the guest console log for a VM that failed.
func (s *session) consoleHint() error {
	if s.o.Flags.Debug {
		return nil
	}
	b, err := readTail(s.consolePath(), consoleTail)
	if err != nil || len(b) == 0 {
		return nil
	}
	return fmt.Errorf("guest console (%s):\n%s", s.consolePath(), strings.Join(consoleExcerpt(string(b)), "\n"))
}

// consoleLines is how many lines of the guest console an error shows.
const consoleLines = 15

// consoleExcerpt picks what an error shows of the console's tail: from the
// guest kernel's last panic line if there is one (the trace that follows
// would push it out of the last lines), else the last lines.
func consoleExcerpt(tail string) []string {
	lines := strings.Split(strings.TrimRight(tail, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "Kernel panic") {
			return lines[i:min(len(lines), i+consoleLines)]
		}
	}
	return lines[max(0, len(lines)-consoleLines):]
}

// readTail reads at most the last n bytes of the file at path.
func readTail(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(st.Size()-n, 0)
	return io.ReadAll(io.NewSectionReader(f, off, n))
}
