package guest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// Exit codes of a unit's main process, as systemd reports them
// (ExecMainCode: the siginfo code of its end).
const (
	mainNeverRan = 0 // it never ran: a pre-start handler failed, or the exec did
	mainExited   = 1 // CLD_EXITED: ExecMainStatus is the exit code
	mainKilled   = 2 // CLD_KILLED: ExecMainStatus is the signal
	mainDumped   = 3 // CLD_DUMPED: killed by a signal, with a core dump
)

// ExitStatus turns systemd's ExecMainCode and ExecMainStatus of an app's
// unit into the status rkt records: the exit code, or the number of the
// signal that killed the app (rkt stores systemd's ExecMainStatus, which is
// the signal number in that case).
func ExitStatus(code, status int32) (int, error) {
	switch code {
	case mainExited:
		if status < 0 || status > 255 {
			return 0, fmt.Errorf("bad exit status %d", status)
		}
		return int(status), nil
	case mainKilled, mainDumped:
		if status <= 0 || status >= 65 {
			return 0, fmt.Errorf("bad signal %d", status)
		}
		return int(status), nil
	case mainNeverRan:
		// A failure all the same.
		return 1, nil
	}
	return 0, fmt.Errorf("bad ExecMainCode %d", code)
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

// unitEnd is what systemd says of an app's unit.
type unitEnd struct {
	// ended: the unit has been started and has stopped again, its
	// post-stop handlers done (inactive or failed).
	ended        bool
	code, status int32
}

// exitReporter lives in the I/O forwarder, for the whole pod: it learns
// from systemd, over its private bus, when an app's unit has stopped (its
// post-stop handlers included), and reports the app's status to the host
// at once (EventExited). Resident, it saves a unit start and a program
// start per app's end, each hundreds of ms under emulation. When the pod
// ends by rkt's rules it either starts the guest's power-off (an app
// failed while others run) or closes allEnded (every app has ended).
//
// It connects only once the boot is over (start): systemd sends every
// unit change, all its properties, to every connection on its private
// socket, and during the boot that cost ~0.3 s of emulated CPU before the
// apps started. An app that ended before is found by the sweep that
// follows the connection. One connection, for the same reason.
type exitReporter struct {
	apps     []string
	allEnded chan struct{}

	mu       sync.Mutex
	conn     *systemdBus // nil until start
	reported map[string]bool
}

func newExitReporter(apps []string) *exitReporter {
	return &exitReporter{apps: apps, reported: map[string]bool{}, allEnded: make(chan struct{})}
}

// dbusTimeout bounds each call to systemd: it answers within milliseconds
// unless it is stuck, and then the pod cannot end anyway.
const dbusTimeout = 30 * time.Second

// start connects to systemd and watches its unit changes, then checks
// every app once; it does nothing once it has succeeded. (No Subscribe
// call: systemd sends the changes to a private connection anyway.)
func (r *exitReporter) start() error {
	r.mu.Lock()
	if r.conn != nil {
		r.mu.Unlock()
		return nil
	}
	conn, err := dialSystemd()
	if err != nil {
		r.mu.Unlock()
		return err
	}
	apps := make(map[dbus.ObjectPath]string, len(r.apps))
	for _, a := range r.apps {
		apps[unitPath(contract.AppService(a))] = a
	}
	conn.unitChanges(func(path dbus.ObjectPath, changed map[string]dbus.Variant) {
		if app, ok := apps[path]; ok {
			r.check(app, changed)
		}
	})
	r.conn = conn
	r.mu.Unlock()
	r.sweep()
	return nil
}

// sweep checks every app not yet reported. The forwarder calls it once
// more at its stop, when every app's unit has stopped.
func (r *exitReporter) sweep() {
	for _, app := range r.apps {
		r.check(app, nil)
	}
}

// check reports app's end if its unit has ended and it was not reported yet,
// then applies the pod rules. changed, if not nil, is the unit's state as a
// change just reported it: what it holds is not asked again.
func (r *exitReporter) check(app string, changed map[string]dbus.Variant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reported[app] || r.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbusTimeout)
	defer cancel()
	end, err := r.conn.unitEnd(ctx, contract.AppService(app), changed)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1-io: app %s: %v\n", app, err)
		return
	}
	if !end.ended {
		return
	}
	status, err := ExitStatus(end.code, end.status)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1-io: app %s: %v\n", app, err)
		status = 1
	}
	r.reported[app] = true
	if err := Send(contract.EventsPort, contract.Event{Kind: contract.EventExited, App: app, Status: status}.String()); err != nil {
		fmt.Fprintf(os.Stderr, "stage1-io: report the end of app %s: %v\n", app, err)
	}
	switch PodEnd(status, r.apps, func(a string) bool { return r.reported[a] }) {
	case podEnded:
		close(r.allEnded)
	case podStops:
		if err := r.powerOff(); err != nil {
			fmt.Fprintf(os.Stderr, "stage1-io: %v\n", err)
		}
	}
}

// Properties of an app's unit: its state, then (once it is inactive or
// failed) whether it ever ran and how its main process ended.
var (
	activeState = property{unitInterface, "ActiveState"}
	endState    = []property{
		{unitInterface, "InactiveExitTimestampMonotonic"},
		{serviceInterface, "ExecMainCode"},
		{serviceInterface, "ExecMainStatus"},
	}
)

// unitEnd asks systemd whether unit has run and stopped, and how its main
// process ended. What changed holds is not asked (systemd sends a unit's
// whole state with each change): a change that leaves the unit running
// costs no call, and the rest is asked in one round trip.
func (b *systemdBus) unitEnd(ctx context.Context, unit string, changed map[string]dbus.Variant) (unitEnd, error) {
	props := make(map[string]any, 1+len(endState))
	for name, v := range changed {
		props[name] = v.Value()
	}
	ask := func(want ...property) error {
		var missing []property
		for _, p := range want {
			if _, ok := props[p.Name]; !ok {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		got, err := b.properties(ctx, unit, missing)
		maps.Copy(props, got)
		return err
	}
	if err := ask(activeState); err != nil {
		return unitEnd{}, err
	}
	if s, _ := props["ActiveState"].(string); s != "inactive" && s != "failed" {
		return unitEnd{}, nil
	}
	if t, ok := props["InactiveExitTimestampMonotonic"].(uint64); ok && t == 0 {
		return unitEnd{}, nil // never started
	}
	if err := ask(endState...); err != nil {
		return unitEnd{}, err
	}
	return unitEndOf(props)
}

// hasEnded says, from a unit's state properties, whether it has run
// and stopped (inactive or failed). A unit not started yet is inactive
// too: it has never left the inactive state.
func hasEnded(props map[string]any) bool {
	state, _ := props["ActiveState"].(string)
	left, _ := props["InactiveExitTimestampMonotonic"].(uint64)
	return (state == "inactive" || state == "failed") && left != 0
}

// unitEndOf reads, from a unit's activeState and endState properties,
// whether it has ended, and how its main process did.
func unitEndOf(props map[string]any) (unitEnd, error) {
	if !hasEnded(props) {
		return unitEnd{}, nil
	}
	end := unitEnd{ended: true}
	for name, v := range map[string]*int32{"ExecMainCode": &end.code, "ExecMainStatus": &end.status} {
		n, ok := props[name].(int32)
		if !ok {
			return unitEnd{}, fmt.Errorf("%s is %T, not int32", name, props[name])
		}
		*v = n
	}
	return end, nil
}

// powerOff starts the guest's orderly power-off, as `systemctl poweroff`
// does, without starting a program.
func (r *exitReporter) powerOff() error {
	ctx, cancel := context.WithTimeout(context.Background(), dbusTimeout)
	defer cancel()
	if err := r.conn.startUnit(ctx, "poweroff.target", "replace-irreversibly"); err != nil {
		return fmt.Errorf("power off: %w", err)
	}
	return nil
}

// endAtOnce, once every app has ended, puts on the host what a power-off
// would have: drain (the forwarder's own drain: the apps' output to the
// host and to journald, waiting for both), then every file system synced,
// so that what is still dirty in the page cache of a file some guest
// process holds open is on the host's share (a file's last close writes
// it back already). The host may then stop the VM at once
// (EventEnded) instead of waiting for a guest shutdown.
func endAtOnce(drain func()) error {
	drain()
	unix.Sync()
	return Send(contract.EventsPort, contract.Event{Kind: contract.EventEnded}.String())
}
