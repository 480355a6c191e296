package supervisor

import (
	"errors"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

func ex(app string, st int) contract.Event {
	return contract.Event{Kind: contract.EventExited, App: app, Status: st}
}

func TestPodExit(t *testing.T) {
	apps := []string{"a", "b"}
	for _, tt := range []struct {
		name  string
		exits []contract.Event
		code  int
		died  bool
	}{
		{"all zero", []contract.Event{ex("a", 0), {Kind: contract.EventReady}, ex("b", 0)}, 0, false},
		{"first failure wins", []contract.Event{ex("a", 0), ex("b", 42), ex("a", 15)}, 42, false},
		{"failure then sigterm of the other", []contract.Event{ex("b", 3), ex("a", 15)}, 3, false},
		{"signal", []contract.Event{ex("a", 9)}, 9, false},
		{"vm died", []contract.Event{ex("a", 0)}, 0, true},
		{"nothing", nil, 0, true},
	} {
		code, err := PodExit(tt.exits, apps)
		if code != tt.code || errors.Is(err, ErrVMDied) != tt.died {
			t.Errorf("%s: PodExit = %d, %v", tt.name, code, err)
		}
	}
}
