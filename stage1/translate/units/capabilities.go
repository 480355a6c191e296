package units

import (
	"fmt"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/coreos/go-systemd/v22/unit"
)

// DefaultCapabilities is the bounding set of an app without a capability
// isolator, and the set a remove-set removes from: the 14 capabilities
// appc's ace.md lists, which rkt's stage1 used as its default.
var DefaultCapabilities = []string{
	"CAP_AUDIT_WRITE",
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_KILL",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_NET_BIND_SERVICE",
	"CAP_SETUID",
	"CAP_SETGID",
	"CAP_SETPCAP",
	"CAP_SETFCAP",
	"CAP_SYS_CHROOT",
}

// knownCapabilities are the capabilities systemd 252 knows by name, in
// kernel order (capability 0 first).
var knownCapabilities = strings.Fields(`
	CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID
	CAP_KILL CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_LINUX_IMMUTABLE
	CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW
	CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT
	CAP_SYS_PTRACE CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE
	CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE
	CAP_AUDIT_WRITE CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE
	CAP_MAC_ADMIN CAP_SYSLOG CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_AUDIT_READ
	CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE`)

// capabilityNames checks a capability isolator's names. systemd would skip
// a name it does not know with only a warning in the guest's journal, and
// the app would run with a set other than the one asked for: refuse it.
func capabilityNames(iso types.ACIdentifier, set types.LinuxCapabilitiesSet) ([]string, error) {
	if err := set.AssertValid(); err != nil {
		return nil, fmt.Errorf("isolator %s: %v: %w", iso, err, ErrInvalidPod)
	}
	var caps []string
	for _, c := range set.Set() {
		name := strings.ToUpper(string(c))
		if !containsString(knownCapabilities, name) {
			return nil, fmt.Errorf("isolator %s: unknown capability %q: %w", iso, string(c), ErrInvalidPod)
		}
		caps = appendNew(caps, name)
	}
	return caps, nil
}

// capabilities is the app's bounding set: exactly the retain-set, or the
// default set minus the remove-set (a removed capability outside the
// default set has no effect), or the default set.
func (r *appIsolators) capabilities() []string {
	switch {
	case len(r.retainCaps) > 0:
		return r.retainCaps
	case len(r.removeCaps) > 0:
		var caps []string
		for _, c := range DefaultCapabilities {
			if !containsString(r.removeCaps, c) {
				caps = append(caps, c)
			}
		}
		return caps
	default:
		return DefaultCapabilities
	}
}

// capabilityOptions limits the app to the bounding set caps, as rkt does.
// A process not running as root gets no capabilities from a bounding set
// (root gets it as permitted and effective at execve): a non-root app
// starts with none, unless its manifest (or rkt run --caps-retain) grants
// some with a retain-set, which it then gets as ambient capabilities.
func capabilityOptions(caps, grant []string, uid uint32) []*unit.UnitOption {
	if len(caps) == 0 {
		// An empty assignment would reset the setting rather than empty
		// the set: remove every capability instead.
		return []*unit.UnitOption{service("CapabilityBoundingSet", "~"+strings.Join(knownCapabilities, " "))}
	}
	opts := []*unit.UnitOption{service("CapabilityBoundingSet", strings.Join(caps, " "))}
	if uid != 0 && len(grant) > 0 {
		opts = append(opts, service("AmbientCapabilities", strings.Join(grant, " ")))
	}
	return opts
}
