// Events: the line protocol the guest uses to tell the run entry
// point what happens in the pod: one event per line on the events
// virtio-serial port.
//
//	template-point         the guest is at the template point (systemd up,
//	                       nothing of a pod) and waits for the pod's
//	                       configuration (PodConfig)
//	ready [kernel_ms=N total_ms=M]
//	                       the apps have been started; optionally with the
//	                       guest's boot timings (CLOCK_BOOTTIME ms at the end of
//	                       kernel boot, and now)
//	stdin-ready            the guest holds the stdin port open: data sent
//	                       before that would be dropped by the guest kernel
//	agent-ready            the guest agent holds the agent port open and
//	                       serves sessions on it
//	exited <app> <status>  an app ended; status as rkt records it (exit code,
//	                       or the signal number if a signal killed it)
//	output-end stdout=N stderr=M
//	                       the apps' output is all written: N and M bytes in
//	                       all on the stdout and stderr ports; the guest then
//	                       waits for the host's acknowledgement (OutputAck
//	                       on the stdout port) before it powers off
//
// The guest is not trusted: ParseEvent accepts only these forms, with
// decimal timings of at least 0, an app name that is an AC name (as every
// app of a pod has) and a status from 0 to 255, so a line can carry
// nothing else into the host's records and logs.
package contract

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema/types"
)

// ErrMalformedEvent is returned for a line that is not an event.
var ErrMalformedEvent = errors.New("malformed event")

// EventKind names an event.
type EventKind string

const (
	EventReady EventKind = "ready"
	// EventKernelBooted: the pre-init is about to exec systemd (the
	// kernel's boot, and the pre-init's, are over).
	EventKernelBooted  EventKind = "kernel-booted"
	EventTemplatePoint EventKind = "template-point"
	EventStdinReady    EventKind = "stdin-ready"
	EventAgentReady    EventKind = "agent-ready"
	// EventSettled: the guest's boot is over (no systemd job left).
	EventSettled EventKind = "settled"
	// EventEnded: every app has ended, and what the host must keep of
	// the pod (exit statuses, output, journal, files) is on the host:
	// the VM may be stopped at once, without a guest shutdown.
	EventEnded  EventKind = "ended"
	EventExited EventKind = "exited"
	// EventOutputEnd: the I/O forwarder has written the apps' last bytes.
	EventOutputEnd EventKind = "output-end"
)

// OutputAck is what the host writes back on the stdout port once it has
// passed on every byte an output-end event counted.
const OutputAck = "\n"

// OutputAckTimeout bounds the guest's wait for OutputAck, and the host's
// wait for its copies to catch up: only a reader of run's output that has
// stopped reading makes it matter.
const OutputAckTimeout = 60 * time.Second

// JournalSyncTimeout bounds the I/O forwarder's wait, at power-off, for
// journald to have stored every line the apps wrote: under emulation on a
// busy host journald takes ~1 ms a line, so a burst of tens of thousands
// of lines takes tens of seconds.
const JournalSyncTimeout = 60 * time.Second

// IOStopTimeout bounds the I/O forwarder's stop: its waits for journald
// and for the host, and a margin.
const IOStopTimeout = JournalSyncTimeout + OutputAckTimeout + 30*time.Second

// PowerOffTimeout bounds the guest's orderly power-off: the apps' stop and
// post-stop handlers, then the I/O forwarder's drain (at most
// JournalSyncTimeout and OutputAckTimeout) must fit in it, or the journal
// and the apps' last output are cut off. The image's poweroff.target and
// reboot.target give their jobs this long (JobTimeoutSec) before forcing
// the reboot that ends the VM.
const PowerOffTimeout = 180 * time.Second

// Event is one parsed line.
type Event struct {
	Kind   EventKind
	App    string // EventExited only
	Status int    // EventExited only
	// KernelMs and TotalMs: EventReady only, 0 when absent.
	KernelMs, TotalMs int64
	// StdoutBytes and StderrBytes: EventOutputEnd only.
	StdoutBytes, StderrBytes int64
}

// String is the wire form, without the newline.
func (e Event) String() string {
	switch {
	case e.Kind == EventExited:
		return fmt.Sprintf("%s %s %d", e.Kind, e.App, e.Status)
	case e.Kind == EventOutputEnd:
		return fmt.Sprintf("%s stdout=%d stderr=%d", e.Kind, e.StdoutBytes, e.StderrBytes)
	case e.Kind == EventReady && (e.KernelMs != 0 || e.TotalMs != 0):
		return fmt.Sprintf("%s kernel_ms=%d total_ms=%d", e.Kind, e.KernelMs, e.TotalMs)
	}
	return string(e.Kind)
}

// ParseEvent parses one line (trailing newline allowed).
func ParseEvent(line string) (Event, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return Event{}, fmt.Errorf("%w: empty line", ErrMalformedEvent)
	}
	switch EventKind(f[0]) {
	case EventReady:
		e := Event{Kind: EventReady}
		if len(f) == 1 {
			return e, nil
		}
		if len(f) == 3 {
			var ok1, ok2 bool
			e.KernelMs, ok1 = parseCount(f[1], "kernel_ms=")
			e.TotalMs, ok2 = parseCount(f[2], "total_ms=")
			if ok1 && ok2 {
				return e, nil
			}
		}
	case EventKernelBooted, EventTemplatePoint, EventStdinReady, EventAgentReady, EventSettled, EventEnded:
		if len(f) != 1 {
			break
		}
		return Event{Kind: EventKind(f[0])}, nil
	case EventOutputEnd:
		if len(f) != 3 {
			break
		}
		e := Event{Kind: EventOutputEnd}
		var ok1, ok2 bool
		e.StdoutBytes, ok1 = parseCount(f[1], "stdout=")
		e.StderrBytes, ok2 = parseCount(f[2], "stderr=")
		if ok1 && ok2 {
			return e, nil
		}
	case EventExited:
		if len(f) != 3 {
			break
		}
		if _, err := types.NewACName(f[1]); err != nil {
			break
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 || n > 255 {
			break
		}
		return Event{Kind: EventExited, App: f[1], Status: n}, nil
	}
	return Event{}, fmt.Errorf("%w: %q", ErrMalformedEvent, strings.TrimSpace(line))
}

// parseCount reads key=N, N a decimal number, at least 0.
func parseCount(field, key string) (int64, bool) {
	v, ok := strings.CutPrefix(field, key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
