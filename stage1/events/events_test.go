package events

import (
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, e := range []Event{{Kind: Ready}, {Kind: Ready, KernelMs: 300, TotalMs: 1100}, {Kind: StdinReady}, {Kind: AgentReady}, {Kind: Settled}, {Kind: Exited, App: "web", Status: 42}, {Kind: Exited, App: "a-b", Status: 0}} {
		got, err := Parse(e.String() + "\n")
		if err != nil || got != e {
			t.Errorf("Parse(%q) = %+v, %v", e.String(), got, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, l := range []string{"", "ready now", "ready kernel_ms=x total_ms=1", "exited web", "exited web x", "exited web 300", "exited web -1", "boom"} {
		if _, err := Parse(l); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", l, err)
		}
	}
}
