package guest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/events"
)

// exitedDir records, inside the guest, which apps have ended.
const exitedDir = "/run/stage1/exited"

// StatusDir, relative to the pod mount, is rkt's per-app exit status
// directory (rkt status reads it on the host).
const StatusDir = "rkt/status"

// ExitStatus turns systemd's $EXIT_CODE and $EXIT_STATUS (set for
// ExecStopPost=) into the status rkt records: the exit code, or the number of
// the signal that killed the app (rkt stores systemd's ExecMainStatus, which
// is the signal number in that case).
func ExitStatus(code, status string) (int, error) {
	switch code {
	case "exited":
		n, err := strconv.Atoi(status)
		if err != nil || n < 0 || n > 255 {
			return 0, fmt.Errorf("bad EXIT_STATUS %q", status)
		}
		return n, nil
	case "killed", "dumped":
		if sig := unix.SignalNum("SIG" + status); sig != 0 {
			return int(sig), nil
		}
		if n, err := strconv.Atoi(status); err == nil && n > 0 && n < 65 {
			return n, nil
		}
		return 0, fmt.Errorf("bad signal in EXIT_STATUS %q", status)
	case "":
		// The main process never ran (an ExecStartPre= failed or the
		// unit could not start): a failure all the same.
		return 1, nil
	default:
		return 0, fmt.Errorf("bad EXIT_CODE %q", code)
	}
}

// ShouldPowerOff applies rkt's pod rules: the first app that fails stops the
// pod; otherwise the pod ends when every app has ended.
func ShouldPowerOff(status int, apps []string, exited func(app string) bool) bool {
	if status != 0 {
		return true
	}
	for _, a := range apps {
		if !exited(a) {
			return false
		}
	}
	return true
}

// AppExited records an app's end: the status file rkt reads, an event for
// the run entrypoint, and, per the pod rules, the VM's power-off.
func AppExited(app string, apps []string) error {
	status, err := ExitStatus(os.Getenv("EXIT_CODE"), os.Getenv("EXIT_STATUS"))
	if err != nil {
		return fmt.Errorf("app %s: %w", app, err)
	}
	if err := writeFileSync(filepath.Join(PodMount, StatusDir, app), []byte(strconv.Itoa(status))); err != nil {
		return fmt.Errorf("write status of %s: %w", app, err)
	}
	if err := os.MkdirAll(exitedDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(exitedDir, app), nil, 0o644); err != nil {
		return err
	}
	if err := Send(EventsPort, events.Event{Kind: events.Exited, App: app, Status: status}.String()); err != nil {
		return err
	}
	done := func(a string) bool {
		_, err := os.Stat(filepath.Join(exitedDir, a))
		return err == nil
	}
	if ShouldPowerOff(status, apps, done) {
		// --no-block: we run inside a unit that the power-off stops.
		if out, err := exec.Command("/usr/bin/systemctl", "poweroff", "--no-block").CombinedOutput(); err != nil {
			return fmt.Errorf("power off: %w: %s", err, out)
		}
	}
	return nil
}

// writeFileSync writes a file atomically and durably: the host may read it
// the moment the VM is gone.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
