package hypervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// ErrNoQMP means the VM was started without a QMP socket.
var ErrNoQMP = errors.New("the VM has no QMP socket")

// flushCommand drops TCG's translated code and hands its memory back to the
// host: x-tcg-flush is our own addition to QEMU (qemu/patches).
const flushCommand = `{"execute":"x-tcg-flush"}`

// ReleaseTranslationCache empties a TCG VM's translation cache. Run once the
// guest has booted, it returns what boot filled (tens of MiB under TCG) to
// the host: that code mostly never runs again, and what does is translated
// anew on demand.
func (v *VM) ReleaseTranslationCache(timeout time.Duration) error {
	return v.qmpRun(flushCommand, timeout)
}

// qmpRun runs one QMP command on a fresh connection.
func (v *VM) qmpRun(cmd string, timeout time.Duration) error {
	if v.qmp == "" {
		return ErrNoQMP
	}
	m, err := qmp.NewSocketMonitor("unix", v.qmp, timeout)
	if err != nil {
		return fmt.Errorf("qmp: %w", err)
	}
	if err := m.Connect(); err != nil {
		return fmt.Errorf("qmp: %w", err)
	}
	defer m.Disconnect()
	reply, err := m.Run([]byte(cmd))
	if err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	var r struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(reply, &r); err != nil || r.Return == nil {
		return fmt.Errorf("qmp %s: unexpected reply %s", cmd, reply)
	}
	return nil
}
