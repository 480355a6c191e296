package units

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/coreos/go-systemd/v22/unit"

	"github.com/stage1-kvm/stage1-kvm/stage1/sizing"
)

// isolatorOptions turns the app's isolators into [Service] settings. Only
// the resource limits are enforced so far; any other isolator is an error
// naming it, so that an app never runs with less confinement than its
// manifest asks for. Limits are read by package sizing, which also sizes the
// VM from them: both agree on which occurrence wins (the last).
func isolatorOptions(app types.App) ([]*unit.UnitOption, error) {
	var unsupported []string
	seen := map[types.ACIdentifier]bool{}
	for _, iso := range app.Isolators {
		switch iso.Name {
		case types.ResourceMemoryName, types.ResourceCPUName:
		default:
			if !seen[iso.Name] {
				unsupported = append(unsupported, string(iso.Name))
				seen[iso.Name] = true
			}
		}
	}
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("%s: %w", strings.Join(unsupported, ", "), ErrUnsupportedIsolator)
	}

	var opts []*unit.UnitOption
	mem, ok, err := sizing.MemoryLimit(app)
	if err != nil {
		return nil, err
	}
	if ok {
		opts = append(opts, service("MemoryMax", strconv.FormatInt(mem, 10)))
	}
	milli, ok, err := sizing.CPULimitMilli(app)
	if err != nil {
		return nil, err
	}
	if ok {
		opts = append(opts, service("CPUQuota", cpuQuota(milli)))
	}
	return opts, nil
}

// cpuQuota expresses a CPU limit as systemd's CPUQuota=: one core is 100%.
// Whole percents are what every systemd version parses, so a limit is
// rounded up to the next percent (1m becomes 1%, not an invalid 0%).
func cpuQuota(milli int64) string {
	return strconv.FormatInt((milli+9)/10, 10) + "%"
}
