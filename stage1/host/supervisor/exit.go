package supervisor

import (
	"errors"
	"fmt"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// ErrVMDied means the VM ended before the pod's apps did.
var ErrVMDied = errors.New("the pod's VM stopped before its apps finished")

// ErrBootTimeout means the guest never reported in.
var ErrBootTimeout = errors.New("the pod's VM did not start its apps in time")

// ErrOutputLost means some of what the apps wrote to stdout or stderr did
// not reach run's own: the pod's result is not to be trusted.
var ErrOutputLost = errors.New("the apps' output was not all passed on")

// PodExit applies rkt's rules to the app exits the guest reported, in order:
// the first app that failed gives the pod's exit code; if every app exited
// with 0 the pod exits 0; anything else means the VM died under the apps.
func PodExit(exits []contract.Event, apps []string) (int, error) {
	for _, e := range exits {
		if e.Kind == contract.EventExited && e.Status != 0 {
			return e.Status, nil
		}
	}
	if missing := missingExits(exits, apps); len(missing) > 0 {
		return 0, fmt.Errorf("%w (no exit status for %v)", ErrVMDied, missing)
	}
	return 0, nil
}

// missingExits are the apps without an exit event among exits.
func missingExits(exits []contract.Event, apps []string) []string {
	done := map[string]bool{}
	for _, e := range exits {
		if e.Kind == contract.EventExited {
			done[e.App] = true
		}
	}
	var missing []string
	for _, a := range apps {
		if !done[a] {
			missing = append(missing, a)
		}
	}
	return missing
}
