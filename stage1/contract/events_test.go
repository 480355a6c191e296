package contract

import (
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, e := range []Event{{Kind: EventReady}, {Kind: EventReady, KernelMs: 300, TotalMs: 1100}, {Kind: EventKernelBooted}, {Kind: EventTemplatePoint}, {Kind: EventStdinReady}, {Kind: EventAgentReady}, {Kind: EventSettled}, {Kind: EventExited, App: "web", Status: 42}, {Kind: EventExited, App: "a-b", Status: 0}, {Kind: EventReady, KernelMs: 5}, {Kind: EventOutputEnd, StdoutBytes: 1 << 40, StderrBytes: 0}} {
		got, err := ParseEvent(e.String() + "\n")
		if err != nil || got != e {
			t.Errorf("ParseEvent(%q) = %+v, %v", e.String(), got, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, l := range []string{"", "ready now", "ready kernel_ms=x total_ms=1", "exited web", "exited web x", "kernel-booted now", "exited web 300", "exited web -1", "boom",
		// Negative or malformed timings; app names that are not AC names
		// (the guest is not trusted with the host's logs and records).
		"ready kernel_ms=-1 total_ms=5", "ready kernel_ms=1x total_ms=2", "ready total_ms=2 kernel_ms=1",
		"exited ../../etc/passwd 1", "exited Web 1", "exited \x1b[2J 1", "exited web\x00 1",
		// Byte counts: both, in order, decimal, at least 0, within int64.
		"output-end", "output-end stdout=1", "output-end stderr=1 stdout=1", "output-end stdout=-1 stderr=0",
		"output-end stdout=1 stderr=99999999999999999999", "output-end stdout=0x10 stderr=0", "output-end stdout=1 stderr=1 x"} {
		if _, err := ParseEvent(l); !errors.Is(err, ErrMalformedEvent) {
			t.Errorf("ParseEvent(%q) = %v, want ErrMalformedEvent", l, err)
		}
	}
}
