// Events: the line protocol the guest uses to tell the run entry
// point what happens in the pod: one event per line on the events
// virtio-serial port.
//
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
package contract

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMalformedEvent is returned for a line that is not an event.
var ErrMalformedEvent = errors.New("malformed event")

// EventKind names an event.
type EventKind string

const (
	EventReady      EventKind = "ready"
	EventStdinReady EventKind = "stdin-ready"
	EventAgentReady EventKind = "agent-ready"
	// EventSettled: the guest's boot is over (no systemd job left).
	EventSettled EventKind = "settled"
	EventExited  EventKind = "exited"
)

// Event is one parsed line.
type Event struct {
	Kind   EventKind
	App    string // EventExited only
	Status int    // EventExited only
	// KernelMs and TotalMs: EventReady only, 0 when absent.
	KernelMs, TotalMs int64
}

// String is the wire form, without the newline.
func (e Event) String() string {
	switch {
	case e.Kind == EventExited:
		return fmt.Sprintf("%s %s %d", e.Kind, e.App, e.Status)
	case e.Kind == EventReady && e.TotalMs > 0:
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
			_, err1 := fmt.Sscanf(f[1], "kernel_ms=%d", &e.KernelMs)
			_, err2 := fmt.Sscanf(f[2], "total_ms=%d", &e.TotalMs)
			if err1 == nil && err2 == nil {
				return e, nil
			}
		}
	case EventStdinReady, EventAgentReady, EventSettled:
		if len(f) != 1 {
			break
		}
		return Event{Kind: EventKind(f[0])}, nil
	case EventExited:
		if len(f) != 3 {
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
