// Package supervisor is the run entry point's work: it turns the pod that
// stage0 prepared into a VM, supervises it, relays the apps' standard streams
// and exit statuses, and leaves nothing behind when it is done.
//
// Run is an ordered list of named steps (steps.go, vm.go, network.go), each
// registering its own undo on a cleanup stack, followed by the event loop
// (loop.go) that lasts as long as the VM.
package supervisor

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/cleanup"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/pod"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/runflags"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/volumes"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/sizing"
)

// Bounds of the pod's life after boot.
const (
	// StopTimeout bounds an orderly stop (SIGTERM to run): the guest powers
	// off, apps get SIGTERM (each has TimeoutStopSec=10s before SIGKILL),
	// post-stop handlers run, the apps' last output is passed on. The
	// guest bounds all that itself (contract.PowerOffTimeout); past it and
	// a margin, the VM is killed.
	StopTimeout = contract.PowerOffTimeout + 15*time.Second
	// drainTimeout bounds reading the apps' last output after QEMU exits.
	drainTimeout = 5 * time.Second
	// qmpTimeout bounds one QMP exchange with QEMU.
	qmpTimeout = 5 * time.Second
	// settleDelay is how long after the guest reports its boot over that
	// the boot's translated code is dropped: the guest's forwarder (trimming
	// memory, starting its exit reporter) and systemd's end-of-boot work
	// still run for a few hundred ms, and code they translate after the
	// flush would stay. Measured on
	// an idle pod: 0 s keeps ~10 MiB of translations, 1 s ~1 MiB, 3 s the same.
	settleDelay = time.Second
	// lateFlushDelay is how long after that first flush the translated
	// code is dropped once more. An idle guest still runs new code for
	// a while after its boot: the kernel writes the boot's dirty pages
	// back 30 s after they were dirtied (vm.dirty_expire_centisecs), and
	// the cache of an idle pod grew from ~1.6 to ~3.1 MiB in the first
	// 35 s after ready, then stayed flat for minutes; flushed once more,
	// it stays at ~1.3 MiB (later growth is trimTranslations' to drop).
	lateFlushDelay = 40 * time.Second
)

// Options is what the run entry point was given.
type Options struct {
	// Started is when the run process started (for the timings file).
	Started time.Time
	PodDir  string
	Flags   *runflags.Options
	// Settings are the environment's knobs, already validated.
	Settings settings.Settings
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
}

// Run boots and supervises the pod and returns its exit code.
func Run(o Options) (code int, err error) {
	var undo cleanup.Stack
	defer func() {
		if uerr := undo.Unwind(); uerr != nil {
			fmt.Fprintf(o.Stderr, "stage1: cleanup: %v\n", uerr)
		}
	}()
	s := &session{o: o, timer: &timer{start: o.Started}}
	if s.timer.start.IsZero() {
		s.timer.start = time.Now()
	}
	for _, step := range s.steps() {
		if err := step.do(&undo); err != nil {
			return 0, fmt.Errorf("%s: %w", step.name, err)
		}
		if o.Settings.PauseAfter == step.id {
			// Fault tests kill run here (settings.PauseAfterEnv).
			pause()
		}
	}
	return s.supervise()
}

// pause stops run right here: SIGSTOP to this very thread, which stops
// on its way out of the call. (Sent to the process, the signal may be
// taken by another thread while this one goes on with the next steps.)
func pause() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGSTOP)
}

// step is one start step: an ID (for settings.PauseAfterEnv), what it
// does in words (for errors), and the doing, which registers its undo.
type step struct {
	id, name string
	do       func(*cleanup.Stack) error
}

// steps are the start steps in order.
func (s *session) steps() []step {
	return []step{
		{"lock", "keep the pod lock", s.keepLock},
		{"vmdir", "make the VM directory", s.makeVMDir},
		{"pod", "load the pod", s.loadPod},
		{"volumes", "prepare volumes", s.prepareVolumes},
		{"network", "set up the network", s.setupNetwork},
		{"files", "write the pod's files for the guest", s.writeGuestFiles},
		{"share", "build the pod share", s.buildShare},
		{"channels", "open host channels", s.openChannels},
		{"vm", "start the VM", s.startVM},
		{"pid", "write the pid file", s.writePid},
	}
}

// StepIDs are the start steps' IDs in order.
func StepIDs() []string {
	var ids []string
	for _, st := range (&session{}).steps() {
		ids = append(ids, st.id)
	}
	return ids
}

// session is one run's state, filled in step by step.
type session struct {
	o     Options
	timer *timer

	// From loadPod and prepareVolumes.
	pod     *pod.Pod
	size    sizing.Size
	term    terminal
	volumes *volumes.Prepared
	// From setupNetwork.
	net podNetwork
	// From writeGuestFiles: what contract.PodConfig carries besides.
	guestUnits, guestAccounts []contract.PodFile
	guestIO                   contract.IOConfig
	// From openChannels: the VM's ports and the agent proxy.
	host hostEnds
	// From startVM.
	accel qemu.Accel
	// memoryShort, if not "", says how the pod's memory cgroup is
	// bounded below what its VM may use (no template is made then).
	memoryShort string
	vm          *hypervisor.VM
	// virtiofsds serve the virtiofs shares, if any.
	virtiofsds []*hypervisor.VirtioFSD
}

// terminal: --interactive with a terminal on stdin. The app gets a guest
// terminal of that size, relayed raw.
type terminal struct {
	tty        bool
	rows, cols int
}

func (s *session) logf(format string, args ...any) {
	if s.o.Flags.Debug {
		fmt.Fprintf(s.o.Stderr, "stage1: "+format+"\n", args...)
	}
}

// warnf prints a problem that does not stop the pod.
func (s *session) warnf(format string, args ...any) {
	fmt.Fprintf(s.o.Stderr, "stage1: "+format+"\n", args...)
}
