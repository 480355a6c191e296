package hypervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/hashicorp/go-multierror"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
	"github.com/stage1-kvm/stage1-kvm/stage1/unixsock"
)

// ErrNoQMP means the VM was started without a QMP socket.
var ErrNoQMP = errors.New("the VM has no QMP socket")

// Our own QMP commands (qemu/patches) that free what only boot needed.
const (
	// dropKernelCommand frees QEMU's copy of the bzImage (4 MiB) that
	// the firmware loaded: with -no-reboot, nothing reads it again.
	dropKernelCommand = `{"execute":"x-drop-boot-kernel"}`
	// flushCommand empties TCG's translation cache: what boot translated
	// (tens of MiB) mostly never runs again, and what does is translated
	// anew on demand.
	flushCommand = `{"execute":"x-tcg-flush"}`
	// flushKeepImageCommand empties it too, but keeps the image of a
	// template's translations the clone loaded (LoadTranslations): what
	// runs next is copied from it, where the guest's code is unchanged,
	// instead of translated again. (QEMU drops the image itself when
	// its code buffer fills.)
	flushKeepImageCommand = `{"execute":"x-tcg-flush-keep-image"}`
)

// ReleaseBootMemory hands back to the host the memory QEMU only needed to
// boot the guest. Run it once the guest has booted.
func (v *VM) ReleaseBootMemory(timeout time.Duration) error {
	cmds := []string{dropKernelCommand}
	if v.accel == qemu.TCG {
		cmds = append(cmds, v.flushCommand())
	}
	return v.qmpRun(timeout, cmds...)
}

// FlushTranslations empties TCG's translation cache again (nothing to do
// under KVM): what a guest translated for one-off work since the last
// flush is handed back, and what still runs is translated anew.
func (v *VM) FlushTranslations(timeout time.Duration) error {
	if v.accel != qemu.TCG {
		return nil
	}
	return v.qmpRun(timeout, v.flushCommand())
}

// flushCommand is how to empty the translation cache: a clone keeps its
// template's translations (its pages shared through the page cache),
// so that code it runs again comes from them instead of being translated.
func (v *VM) flushCommand() string {
	if v.translations {
		return flushKeepImageCommand
	}
	return flushCommand
}

// qmpRun runs QMP commands in order on one connection, going on past a
// failed one; it returns every failure.
func (v *VM) qmpRun(timeout time.Duration, cmds ...string) error {
	m, err := v.qmpConnect(timeout)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	var errs *multierror.Error
	for _, cmd := range cmds {
		reply, err := m.Run([]byte(cmd))
		errs = multierror.Append(errs, checkReply(cmd, reply, err))
	}
	return errs.ErrorOrNil()
}

// qmpConnect opens a QMP session with the VM's QEMU.
func (v *VM) qmpConnect(timeout time.Duration) (*qmp.SocketMonitor, error) {
	if v.qmp == "" {
		return nil, ErrNoQMP
	}
	var m *qmp.SocketMonitor
	err := unixsock.Reach(v.qmp, func(name string) (err error) {
		m, err = qmp.NewSocketMonitor("unix", name, timeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	if err := m.Connect(); err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	return m, nil
}

// checkReply turns a failed command, or a reply without a return value
// (an error reply), into an error.
func checkReply(cmd string, reply []byte, err error) error {
	if err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	var r struct {
		Return json.RawMessage `json:"return"`
	}
	if json.Unmarshal(reply, &r) != nil || r.Return == nil {
		return fmt.Errorf("qmp %s: unexpected reply %.200s", cmd, reply)
	}
	return nil
}
