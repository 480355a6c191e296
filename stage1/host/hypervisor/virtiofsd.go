package hypervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/jail"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/jailplan"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
	"github.com/stage1-kvm/stage1-kvm/stage1/unixsock"
)

// ErrNoVirtioFSD means virtiofs was asked for but no virtiofsd is known.
var ErrNoVirtioFSD = errors.New("no virtiofsd available")

// ErrVirtioFSDExited means a virtiofsd ended while its VM needed it.
var ErrVirtioFSDExited = errors.New("virtiofsd exited")

// VirtioFSD is a started virtiofsd. It exits by itself once QEMU, its only
// client, has gone.
type VirtioFSD struct {
	cmd    *exec.Cmd
	tag    string
	socket string
	done   chan struct{}
	// waitErr is how it ended; set before done is closed.
	waitErr error
}

// StartVirtioFSD starts the virtiofsd for share s (a Virtiofs share): it
// listens on s.Socket before returning, so QEMU may connect at once.
// virtiofsd's own messages go to log.
func StartVirtioFSD(b qemu.Binary, s qemu.Share, log io.Writer) (*VirtioFSD, error) {
	if b.VirtioFSD == "" {
		return nil, ErrNoVirtioFSD
	}
	if _, err := os.Stat(b.VirtioFSD); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoVirtioFSD, err)
	}
	ln, err := unixsock.Listen(s.Socket)
	if err != nil {
		return nil, fmt.Errorf("virtiofs socket for %s: %w", s.Tag, err)
	}
	// The socket file stays for QEMU to connect to; Stop removes it.
	ln.SetUnlinkOnClose(false)
	f, err := ln.File()
	ln.Close()
	if err != nil {
		os.Remove(s.Socket)
		return nil, fmt.Errorf("virtiofs socket for %s: %w", s.Tag, err)
	}
	defer f.Close()
	// Through the jailer: no_new_privs and a bounding set of what it
	// needs; it sandboxes itself (namespaces, pivot_root into the
	// shared directory, seccomp). Like QEMU, it dies with run.
	argv := qemu.VirtioFSDArgv(b, s.Path, 3)
	cmd, err := jail.Start(jailplan.ForVirtioFSD(), argv, jail.Options{
		Jailer: b.Jailer, Files: []*os.File{f}, Stdout: log, Stderr: log,
	})
	if err != nil {
		os.Remove(s.Socket)
		return nil, fmt.Errorf("start virtiofsd for %s: %w", s.Tag, err)
	}
	d := &VirtioFSD{cmd: cmd, tag: s.Tag, socket: s.Socket, done: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// Done is closed once virtiofsd has exited.
func (d *VirtioFSD) Done() <-chan struct{} { return d.done }

// Failed says how virtiofsd failed (ErrVirtioFSDExited, wrapped): killed
// or a non-zero status. nil while it runs, and after it ended by itself
// with status 0, as it does once QEMU has gone.
func (d *VirtioFSD) Failed() error {
	select {
	case <-d.done:
	default:
		return nil
	}
	if d.waitErr == nil {
		return nil
	}
	return fmt.Errorf("%w: the one serving share %s (%v)", ErrVirtioFSDExited, d.tag, d.waitErr)
}

// Pid is virtiofsd's process ID.
func (d *VirtioFSD) Pid() int { return d.cmd.Process.Pid }

// Stop ends virtiofsd if it still runs, waits for it and removes its socket.
func (d *VirtioFSD) Stop() error {
	select {
	case <-d.done:
	default:
		if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("kill virtiofsd: %w", err)
		}
		<-d.done
	}
	if err := os.Remove(d.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove virtiofs socket: %w", err)
	}
	return nil
}
