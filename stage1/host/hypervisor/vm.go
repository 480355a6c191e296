package hypervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/jail"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/jailplan"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
	"github.com/stage1-kvm/stage1-kvm/stage1/unixsock"
)

// VM is a started QEMU process.
type VM struct {
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	qmp   string
	accel qemu.Accel
	// translations: a template's translations are loaded
	// (LoadTranslations), for every flush to keep.
	translations bool
}

// ErrNoJailer means the QEMU binary came without a jailer: QEMU never runs
// unconfined.
var ErrNoJailer = errors.New("no jailer to confine QEMU")

// Start validates c and starts QEMU confined (docs/security.md): through
// the jailer, in a jail mounted on jailDir (an empty directory, made if
// missing) in namespaces of its own, as an unprivileged user with only the
// capabilities 9p needs, no_new_privs, and its own seccomp filter when it
// has one. It returns once QEMU runs. QEMU's own stdout and stderr (its
// error messages, never the guest's) go to stderr.
func Start(c qemu.Config, jailDir string, stderr io.Writer) (*VM, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if unconfined != "" {
		return startUnconfined(c, stderr)
	}
	if c.Binary.Jailer == "" {
		return nil, ErrNoJailer
	}
	if err := os.Mkdir(jailDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("jail directory: %w", err)
	}
	plan, jailed, err := jailplan.ForQEMU(c, jailDir)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, t := range c.Taps {
		files = append(files, t.File)
	}
	if c.QMPSocket != "" {
		// QEMU cannot make a file on the host: it gets QMP's listening
		// socket made.
		qmp, err := listenQMP(c.QMPSocket)
		if err != nil {
			return nil, err
		}
		defer qmp.Close()
		files = append(files, qmp)
	}
	cmd, err := jail.Start(plan, qemu.Argv(jailed), jail.Options{
		Jailer: c.Binary.Jailer, Files: files, Stdout: stderr, Stderr: stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	return started(cmd, c), nil
}

// listenQMP makes QMP's listening socket at path, for QEMU to inherit.
func listenQMP(path string) (*os.File, error) {
	os.Remove(path)
	ln, err := unixsock.Listen(path)
	if err != nil {
		return nil, fmt.Errorf("qmp socket: %w", err)
	}
	// The socket file stays for QEMU's life: whoever started the VM
	// removes it.
	ln.SetUnlinkOnClose(false)
	f, err := ln.File()
	ln.Close()
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("qmp socket: %w", err)
	}
	return f, nil
}

// started watches the started QEMU.
func started(cmd *exec.Cmd, c qemu.Config) *VM {
	vm := &VM{cmd: cmd, done: make(chan struct{}), qmp: c.QMPSocket, accel: c.Accel}
	oom := ownOOMCounter()
	if c.Cgroup != "" {
		oom = cgroupOOMCounter(c.Cgroup)
	}
	before, counted := oom.kills()
	go func() {
		vm.err = cmd.Wait()
		if after, ok := oom.kills(); counted && ok && after > before && killed(cmd) {
			vm.err = fmt.Errorf("%w: %w (its memory cgroup, %s, is full)", vm.err, ErrOutOfMemory, filepath.Dir(oom.file))
		}
		close(vm.done)
	}()
	return vm
}

// ErrOutOfMemory means the kernel's out-of-memory killer ended QEMU.
var ErrOutOfMemory = errors.New("killed by the kernel for lack of memory")

// killed says whether the exited cmd died of SIGKILL.
func killed(cmd *exec.Cmd) bool {
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// unconfined, set only at link time (-ldflags -X) in a build made to
// measure what confinement costs (docs/benchmarks.md), starts QEMU as it
// was started before the jail: directly, as root, without -sandbox. No
// release build sets it, and nothing at run time can.
var unconfined string

func startUnconfined(c qemu.Config, stderr io.Writer) (*VM, error) {
	c.Binary.Bundled = false
	argv := qemu.Argv(c)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), c.Binary.Env()...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	for _, t := range c.Taps {
		cmd.ExtraFiles = append(cmd.ExtraFiles, t.File)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	return started(cmd, c), nil
}

// Pid is QEMU's process ID.
func (v *VM) Pid() int { return v.cmd.Process.Pid }

// Done is closed when QEMU has exited.
func (v *VM) Done() <-chan struct{} { return v.done }

// Wait waits for QEMU to exit and returns its error (nil for status 0).
func (v *VM) Wait() error {
	<-v.done
	if v.err != nil {
		return fmt.Errorf("qemu: %w", v.err)
	}
	return nil
}

// Kill ends QEMU at once and waits for it.
func (v *VM) Kill() error {
	select {
	case <-v.done:
		return nil
	default:
	}
	if err := v.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill qemu: %w", err)
	}
	<-v.done
	return nil
}
