package units

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/coreos/go-systemd/v22/unit"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/sizing"
)

// appIsolators is what an app's isolators ask for, read and checked before
// any unit option is written.
type appIsolators struct {
	// retainCaps and removeCaps are the union of the app's capability
	// retain-sets and remove-sets (appc lets an app have several of one
	// kind, and rkt merged them); at most one kind is set.
	retainCaps, removeCaps []string
	// seccomp is the app's single seccomp isolator, nil without one.
	seccomp     types.LinuxSeccompSet
	seccompName types.ACIdentifier
	noNewPrivs  bool
	oomScoreAdj *int
	cpuShares   *int
	sysctl      map[string]string
}

// singleIsolators may appear at most once per app (appc's multipleAllowed
// is false for them): a second one is a malformed manifest, not something
// to resolve by picking one.
var singleIsolators = map[types.ACIdentifier]bool{
	types.LinuxNoNewPrivilegesName:  true,
	types.LinuxOOMScoreAdjName:      true,
	types.LinuxCPUSharesName:        true,
	types.LinuxSeccompRemoveSetName: true,
	types.LinuxSeccompRetainSetName: true,
	types.UnixSysctlName:            true,
}

func isCapabilitySet(name types.ACIdentifier) bool {
	return name == types.LinuxCapabilitiesRetainSetName || name == types.LinuxCapabilitiesRevokeSetName
}

// readIsolators checks the app's isolators and gathers what they ask for.
// An isolator this stage1 does not enforce is an error naming it, so that
// an app never runs with less confinement than its manifest asks for.
func readIsolators(app types.App) (*appIsolators, error) {
	var unsupported []string
	seen := map[types.ACIdentifier]bool{}
	r := &appIsolators{}
	for _, iso := range app.Isolators {
		name := iso.Name
		if seen[name] && singleIsolators[name] {
			return nil, fmt.Errorf("isolator %s appears more than once: %w", name, ErrInvalidPod)
		}
		first := !seen[name]
		seen[name] = true
		v := iso.Value()
		if v == nil && singleIsolators[name] || v == nil && isCapabilitySet(name) {
			return nil, fmt.Errorf("isolator %s has no value: %w", name, ErrInvalidPod)
		}
		known, err := r.add(name, v)
		if err != nil {
			return nil, err
		}
		if !known && first {
			unsupported = append(unsupported, string(name))
		}
	}
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("%s: %w", strings.Join(unsupported, ", "), ErrUnsupportedIsolator)
	}
	if seen[types.LinuxCapabilitiesRetainSetName] && seen[types.LinuxCapabilitiesRevokeSetName] {
		return nil, fmt.Errorf("%s and %s cannot be used together: %w",
			types.LinuxCapabilitiesRetainSetName, types.LinuxCapabilitiesRevokeSetName, ErrInvalidPod)
	}
	if seen[types.LinuxSeccompRetainSetName] && seen[types.LinuxSeccompRemoveSetName] {
		return nil, fmt.Errorf("%s and %s cannot be used together: %w",
			types.LinuxSeccompRetainSetName, types.LinuxSeccompRemoveSetName, ErrInvalidPod)
	}
	return r, nil
}

// add records one isolator's value (long: one flat switch, a case per
// isolator kind); known is false for an isolator this
// stage1 does not implement.
func (r *appIsolators) add(name types.ACIdentifier, v types.IsolatorValue) (known bool, err error) {
	switch name {
	case types.ResourceMemoryName, types.ResourceCPUName:
		// Read by package sizing (see isolatorOptions).
	case types.LinuxCapabilitiesRetainSetName, types.LinuxCapabilitiesRevokeSetName:
		set, ok := v.(types.LinuxCapabilitiesSet)
		if !ok {
			return true, fmt.Errorf("isolator %s: unexpected value %T: %w", name, v, ErrInvalidPod)
		}
		caps, err := capabilityNames(name, set)
		if err != nil {
			return true, err
		}
		if name == types.LinuxCapabilitiesRetainSetName {
			r.retainCaps = appendNew(r.retainCaps, caps...)
		} else {
			r.removeCaps = appendNew(r.removeCaps, caps...)
		}
	case types.LinuxSeccompRetainSetName, types.LinuxSeccompRemoveSetName:
		set, ok := v.(types.LinuxSeccompSet)
		if !ok {
			return true, fmt.Errorf("isolator %s: unexpected value %T: %w", name, v, ErrInvalidPod)
		}
		r.seccomp, r.seccompName = set, name
	case types.LinuxNoNewPrivilegesName:
		b, ok := v.(*types.LinuxNoNewPrivileges)
		if !ok {
			return true, fmt.Errorf("isolator %s: unexpected value %T: %w", name, v, ErrInvalidPod)
		}
		r.noNewPrivs = bool(*b)
	case types.LinuxOOMScoreAdjName:
		n, ok := v.(*types.LinuxOOMScoreAdj)
		if !ok {
			return true, fmt.Errorf("isolator %s: unexpected value %T: %w", name, v, ErrInvalidPod)
		}
		if err := n.AssertValid(); err != nil {
			return true, fmt.Errorf("isolator %s: %v: %w", name, err, ErrInvalidPod)
		}
		adj := int(*n)
		r.oomScoreAdj = &adj
	case types.LinuxCPUSharesName:
		n, ok := v.(*types.LinuxCPUShares)
		if !ok {
			return true, fmt.Errorf("isolator %s: unexpected value %T: %w", name, v, ErrInvalidPod)
		}
		if err := n.AssertValid(); err != nil {
			return true, fmt.Errorf("isolator %s: %v: %w", name, err, ErrInvalidPod)
		}
		shares := int(*n)
		r.cpuShares = &shares
	case types.UnixSysctlName:
		s, ok := v.(*types.UnixSysctl)
		if !ok {
			return true, fmt.Errorf("isolator %s: unexpected value %T: %w", name, v, ErrInvalidPod)
		}
		if err := checkSysctls(*s); err != nil {
			return true, err
		}
		r.sysctl = map[string]string(*s)
	default:
		return false, nil
	}
	return true, nil
}

// isolatorOptions turns the app's isolators, and rkt's defaults where it
// has none, into unit settings. uid is the app's numeric user. Limits are
// read by package sizing, which also sizes the VM from them: both agree on
// which occurrence wins (the last).
func isolatorOptions(a App, uid uint32, p Pod) ([]*unit.UnitOption, error) {
	iso, err := readIsolators(a.App)
	if err != nil {
		return nil, err
	}

	var opts []*unit.UnitOption
	mem, ok, err := sizing.MemoryLimit(a.App)
	if err != nil {
		return nil, err
	}
	if ok {
		opts = append(opts, service("MemoryMax", strconv.FormatInt(mem, 10)))
	}
	milli, ok, err := sizing.CPULimitMilli(a.App)
	if err != nil {
		return nil, err
	}
	if ok {
		opts = append(opts, service("CPUQuota", cpuQuota(milli)))
	}
	if iso.cpuShares != nil {
		opts = append(opts, service("CPUWeight", strconv.Itoa(cpuWeight(*iso.cpuShares))))
	}
	if iso.oomScoreAdj != nil {
		opts = append(opts, service("OOMScoreAdjust", strconv.Itoa(*iso.oomScoreAdj)))
	}
	if iso.noNewPrivs {
		opts = append(opts, service("NoNewPrivileges", "yes"))
	}
	if !p.DisableCapabilities {
		opts = append(opts, capabilityOptions(iso.capabilities(), iso.retainCaps, uid)...)
	}
	if !p.DisableSeccomp {
		sc, err := seccompOptions(iso.seccompName, iso.seccomp)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sc...)
	}
	if !p.DisablePaths {
		opts = append(opts, protectedPathOptions(contract.AppRootfs(a.Name))...)
	}
	if hasSysctls(p) {
		opts = append(opts,
			unitOpt("Requires", SysctlService),
			unitOpt("After", SysctlService))
	}
	return opts, nil
}

// cpuQuota expresses a CPU limit as systemd's CPUQuota=: one core is 100%.
// Whole percents are what every systemd version parses, so a limit is
// rounded up to the next percent (1m becomes 1%, not an invalid 0%).
func cpuQuota(milli int64) string {
	return strconv.FormatInt((milli+9)/10, 10) + "%"
}

// cpuWeight maps cgroup v1 CPU shares (appc's os/linux/cpu-shares, 2 to
// 262144, default 1024) to a cgroup v2 weight (1 to 10000, default 100) the
// way systemd maps its own CPUShares= to CPUWeight=: proportionally, the
// default onto the default, truncated and clamped.
func cpuWeight(shares int) int {
	return min(max(shares*100/1024, 1), 10000)
}

// appendNew appends the items of add not already in list.
func appendNew(list []string, add ...string) []string {
	for _, s := range add {
		if !containsString(list, s) {
			list = append(list, s)
		}
	}
	return list
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
