package hypervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// ErrState means saving or loading a VM's device state failed.
var ErrState = errors.New("VM state")

// stateFD is the name the state file's descriptor gets in QEMU (getfd).
const stateFD = "stage1-state"

// Guest RAM is not in the state: with x-ignore-shared, QEMU leaves out
// RAM that is a shared file mapping (the template's RAM file), and a clone
// maps that file itself.
const ignoreShared = `{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-ignore-shared","state":true}]}}`

// SaveState stops the guest and writes its device state to f (a template
// in the making; its RAM is the VM's RAM file). QEMU stays, paused, until
// killed.
func (v *VM) SaveState(f *os.File, timeout time.Duration) error {
	return v.transferState(f, "migrate", timeout, func(m *qmp.SocketMonitor) (bool, error) {
		var r struct {
			Return struct {
				Status string `json:"status"`
				Error  string `json:"error-desc"`
			} `json:"return"`
		}
		if err := v.qmpQuery(m, `{"execute":"query-migrate"}`, &r); err != nil {
			return false, err
		}
		switch r.Return.Status {
		case "completed":
			return true, nil
		case "failed", "cancelled":
			return false, fmt.Errorf("%w: save %s: %s", ErrState, r.Return.Status, r.Return.Error)
		}
		return false, nil
	})
}

// LoadState loads the device state a clone of a template starts from (f,
// SaveState's output) into a VM started with Incoming; the guest stays
// paused until Resume. A state QEMU cannot load ends QEMU.
func (v *VM) LoadState(f *os.File, timeout time.Duration) error {
	return v.transferState(f, "migrate-incoming", timeout, func(m *qmp.SocketMonitor) (bool, error) {
		var r struct {
			Return struct {
				Status string `json:"status"`
			} `json:"return"`
		}
		if err := v.qmpQuery(m, `{"execute":"query-status"}`, &r); err != nil {
			return false, err
		}
		return r.Return.Status != "inmigrate", nil
	})
}

// Resume runs the guest of a VM whose state LoadState loaded.
func (v *VM) Resume(timeout time.Duration) error {
	m, err := v.qmpConnect(timeout)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	defer m.Disconnect()
	return v.qmpQuery(m, `{"execute":"cont"}`, nil)
}

// transferState hands f to QEMU and runs cmd (migrate or migrate-incoming)
// on it, then polls done until it says the transfer is over, QEMU exits
// or timeout passes.
func (v *VM) transferState(f *os.File, cmd string, timeout time.Duration, done func(*qmp.SocketMonitor) (bool, error)) error {
	m, err := v.qmpConnect(timeout)
	if errors.Is(err, ErrNoQMP) {
		return err
	} else if err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	defer m.Disconnect()
	if err := v.qmpQuery(m, ignoreShared, nil); err != nil {
		return err
	}
	if err := giveFD(m, stateFD, f); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	if err := v.qmpQuery(m, `{"execute":"`+cmd+`","arguments":{"uri":"fd:`+stateFD+`"}}`, nil); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		ok, err := done(m)
		if err != nil || ok {
			return err
		}
		select {
		case <-v.done:
			return fmt.Errorf("%w: %s: qemu exited: %v", ErrState, cmd, v.err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s: not done after %s", ErrState, cmd, timeout)
		}
	}
}

// qmpQuery runs one command and decodes its reply into out (if not nil).
func (v *VM) qmpQuery(m *qmp.SocketMonitor, cmd string, out any) error {
	reply, err := m.Run([]byte(cmd))
	if err := replyError(cmd, reply, err); err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(reply, out); err != nil {
			return fmt.Errorf("%w: qmp %s: %w", ErrState, cmd, err)
		}
	}
	return nil
}

// giveFD hands f to QEMU under name (getfd), for a command that names it.
func giveFD(m *qmp.SocketMonitor, name string, f *os.File) error {
	reply, err := m.RunWithFile([]byte(`{"execute":"getfd","arguments":{"fdname":"`+name+`"}}`), f)
	return checkReply("getfd", reply, err)
}

// replyError is checkReply's error as an ErrState.
func replyError(cmd string, reply []byte, err error) error {
	if err := checkReply(cmd, reply, err); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	return nil
}
