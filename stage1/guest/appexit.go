package guest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// exitedDir records, inside the guest, which apps have ended.
const exitedDir = "/run/stage1/exited"

// ExitStatus turns systemd's $MONITOR_EXIT_CODE and $MONITOR_EXIT_STATUS
// (given to units started by an app's OnSuccess=/OnFailure=) into the status rkt records: the exit code, or the number of
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

// podEnd is what an app's end means for the pod.
type podEnd int

const (
	// podRuns: other apps still run.
	podRuns podEnd = iota
	// podStops: an app failed while others run; they are stopped in
	// order (SIGTERM, their post-stop handlers) by a power-off.
	podStops
	// podEnded: every app has ended; nothing is left to stop.
	podEnded
)

// PodEnd applies rkt's pod rules: the first app that fails stops the pod;
// otherwise the pod ends when every app has ended.
func PodEnd(status int, apps []string, exited func(app string) bool) podEnd {
	for _, a := range apps {
		if !exited(a) {
			if status != 0 {
				return podStops
			}
			return podRuns
		}
	}
	return podEnded
}

// AppExited records an app's end: an event for the run entry point (which
// writes the status file rkt reads) and, per the pod rules, the VM's
// power-off.
func AppExited(app string, apps []string) error {
	code, st := os.Getenv("MONITOR_EXIT_CODE"), os.Getenv("MONITOR_EXIT_STATUS")
	if code == "" {
		// systemd leaves the MONITOR_ variables out in some cases; ask
		// it directly, as rkt's own reaper did.
		var err error
		if code, st, err = mainStatus(contract.AppService(app)); err != nil {
			return err
		}
	}
	status, err := ExitStatus(code, st)
	if err != nil {
		return fmt.Errorf("app %s: %w", app, err)
	}
	if err := os.MkdirAll(exitedDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(exitedDir, app), nil, 0o644); err != nil {
		return err
	}
	if err := Send(contract.EventsPort, contract.Event{Kind: contract.EventExited, App: app, Status: status}.String()); err != nil {
		return err
	}
	done := func(a string) bool {
		_, err := os.Stat(filepath.Join(exitedDir, a))
		return err == nil
	}
	switch PodEnd(status, apps, done) {
	case podEnded:
		err := endAtOnce()
		if err == nil {
			return nil
		}
		// The orderly way still keeps everything, only slower.
		fmt.Fprintf(os.Stderr, "stage1-app-exited: %v; powering off\n", err)
		return powerOff()
	case podStops:
		return powerOff()
	}
	return nil
}

// powerOff starts the guest's orderly power-off.
func powerOff() error {
	// --no-block: the power-off waits for this unit to finish.
	if out, err := exec.Command(contract.Systemctl, "poweroff", "--no-block").CombinedOutput(); err != nil {
		return fmt.Errorf("power off: %w: %s", err, out)
	}
	return nil
}

// endAtOnce, once every app has ended, puts on the host what a power-off
// would have: the I/O forwarder's stop drains the apps' output to the host
// and to journald, and waits for both (as at a power-off); then every
// file system is synced, so that what apps and journald wrote through
// mappings or the page cache is on the host's share. The host may then
// stop the VM at once (EventEnded) instead of waiting for a guest shutdown.
func endAtOnce() error {
	if err := stopForwarder(); err != nil {
		return err
	}
	unix.Sync()
	return Send(contract.EventsPort, contract.Event{Kind: contract.EventEnded}.String())
}

// stopForwarder sends the I/O forwarder SIGTERM, as systemd's stop would,
// and waits for it to exit, at most contract.IOStopTimeout.
func stopForwarder() error {
	b, err := os.ReadFile(contract.IOPidFile)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s: bad PID %q", contract.IOPidFile, b)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("the I/O forwarder (PID %d): %w", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0); err != nil {
		return fmt.Errorf("stop the I/O forwarder: %w", err)
	}
	// The pidfd reads as ready once the process has exited.
	deadline := time.Now().Add(contract.IOStopTimeout)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(time.Until(deadline).Milliseconds()))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("wait for the I/O forwarder: %w", err)
		case n == 0:
			return fmt.Errorf("the I/O forwarder did not stop within %v", contract.IOStopTimeout)
		}
		return nil
	}
}

// mainStatus reads a unit's main process result from systemd, in the
// $EXIT_CODE/$EXIT_STATUS vocabulary ExitStatus takes.
func mainStatus(unit string) (code, status string, err error) {
	out, err := exec.Command(contract.Systemctl, "show", "--property=ExecMainCode,ExecMainStatus", unit).Output()
	if err != nil {
		return "", "", fmt.Errorf("query %s: %w", unit, err)
	}
	return ParseMainStatus(string(out))
}

// ParseMainStatus parses `systemctl show -p ExecMainCode,ExecMainStatus`.
// ExecMainCode is the siginfo code: 1 exited, 2 killed, 3 dumped, 0 never ran.
func ParseMainStatus(out string) (code, status string, err error) {
	var mc string
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
		switch k {
		case "ExecMainCode":
			mc = v
		case "ExecMainStatus":
			status = v
		}
	}
	switch mc {
	case "1":
		return "exited", status, nil
	case "2":
		return "killed", status, nil
	case "3":
		return "dumped", status, nil
	case "0":
		return "", "", nil
	}
	return "", "", fmt.Errorf("unexpected systemctl output %q", out)
}
