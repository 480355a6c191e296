package units

import (
	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// WarmApp is the unit of contract.WarmApp, for the guest image: the
// service an app with no isolators of its own gets under rkt's defaults
// (capability bounding set, seccomp allow-list, protected kernel paths),
// running as root, streams to files in contract.IODir, and without its
// place in a pod (no I/O forwarder, no journald exist when it runs).
// Made here, by the same code as every app's unit, so that what a
// template's warm-up runs follows what the pods' apps run.
func WarmApp() (File, error) {
	a := App{
		Name:      contract.WarmApp,
		ImageName: "stage1-kvm/warm-up",
		App: types.App{
			Exec:  types.Exec{contract.GuestProgram, "mark"},
			User:  "0",
			Group: "0",
		},
	}
	opts, err := appService(a, Pod{Apps: []App{a}})
	if err != nil {
		return File{}, err
	}
	content, err := render(opts)
	if err != nil {
		return File{}, err
	}
	return File{Name: contract.AppService(a.Name), Content: content}, nil
}
