package units

import "github.com/coreos/go-systemd/v22/unit"

// WarmService makes a first request to the pod's metadata service before
// the apps start. Under emulation the first connection of a guest is slow
// (the gateway's neighbour entry, and the kernel's TCP paths translated for
// the first time); appc's validator gives each metadata request 100 ms.
const WarmService = "stage1-mds-warm.service"

// warmUnit is WarmService, or nil for a pod that has no metadata service.
func warmUnit(p Pod, names []string) ([]*unit.UnitOption, error) {
	url := ""
	for _, a := range p.Apps {
		if a.MetadataURL != "" {
			url = a.MetadataURL
			break
		}
	}
	if url == "" {
		return nil, nil
	}
	exec, err := guestCommand("", "warm", url)
	if err != nil {
		return nil, err
	}
	return []*unit.UnitOption{
		unitOpt("Description", "First request to the pod's metadata service"),
		unitOpt("DefaultDependencies", "no"),
		unitOpt("Before", serviceNames(names)),
		service("Type", "oneshot"),
		service("RemainAfterExit", "yes"),
		service("ExecStart", exec),
	}, nil
}
