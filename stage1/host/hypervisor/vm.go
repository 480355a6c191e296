package hypervisor

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// VM is a started QEMU process.
type VM struct {
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	qmp   string
	accel qemu.Accel
}

// Start validates c and starts QEMU. QEMU's own stdout and stderr (its error
// messages, never the guest's) go to stderr.
func Start(c qemu.Config, stderr io.Writer) (*VM, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	argv := qemu.Argv(c)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), c.Binary.Env()...)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	for _, t := range c.Taps {
		cmd.ExtraFiles = append(cmd.ExtraFiles, t.File)
	}
	// QEMU must not outlive the process supervising it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	vm := &VM{cmd: cmd, done: make(chan struct{}), qmp: c.QMPSocket, accel: c.Accel}
	go func() {
		vm.err = cmd.Wait()
		close(vm.done)
	}()
	return vm, nil
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
