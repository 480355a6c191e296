package units

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/coreos/go-systemd/v22/unit"
)

// SysctlService writes the pod's os/unix/sysctl parameters in the guest
// before any app starts (only generated for a pod that has some).
const SysctlService = "stage1-sysctl.service"

// namespacedSysctls are the parameters a container runtime may set for a
// pod: those the kernel keeps per network namespace (net.*) or per IPC
// namespace. Inside the VM the whole guest is the pod, so these are
// written in the guest's own namespaces and reach every app, as appc's pod
// scope wants. Anything else (kernel.*, vm.*, fs.* beyond mqueue) is
// global to a kernel: refused, as runtimes that share the host's kernel
// refuse it, so that a manifest means the same here and there.
func namespacedSysctl(key string) bool {
	switch key {
	case "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
		"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced":
		return true
	}
	return strings.HasPrefix(key, "net.") || strings.HasPrefix(key, "fs.mqueue.")
}

// checkSysctls validates an os/unix/sysctl value: dotted keys naming
// files under /proc/sys, one-line values.
func checkSysctls(s types.UnixSysctl) error {
	for k, v := range s {
		if !isSysctlKey(k) {
			return fmt.Errorf("isolator %s: %q is not a sysctl name: %w", types.UnixSysctlName, k, ErrInvalidPod)
		}
		if !namespacedSysctl(k) {
			return fmt.Errorf("isolator %s: %s is not a namespaced sysctl (only net.*, fs.mqueue.* and the IPC kernel.* ones are): %w",
				types.UnixSysctlName, k, ErrUnsupportedIsolator)
		}
		if v == "" || strings.ContainsAny(v, "\x00\n\r") || len(v) > 4096 {
			return fmt.Errorf("isolator %s: %s: value %q is not one line of text: %w", types.UnixSysctlName, k, v, ErrInvalidPod)
		}
	}
	return nil
}

// isSysctlKey accepts dot-separated names of [A-Za-z0-9_-] (interface
// names may carry capitals and dashes); no empty component, so no way out
// of /proc/sys.
func isSysctlKey(k string) bool {
	if k == "" || len(k) > 256 {
		return false
	}
	for _, part := range strings.Split(k, ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// podSysctls merges the apps' sysctl isolators. appc allows one per pod;
// apps of a pod assembled from several images may each carry one, which is
// fine as long as they agree.
func podSysctls(p Pod) (map[string]string, error) {
	all := map[string]string{}
	owner := map[string]string{}
	for _, a := range p.Apps {
		iso, err := readIsolators(a.App)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", a.Name, err)
		}
		for k, v := range iso.sysctl {
			if prev, ok := all[k]; ok && prev != v {
				return nil, fmt.Errorf("apps %s and %s set sysctl %s to %q and %q: %w", owner[k], a.Name, k, prev, v, ErrInvalidPod)
			}
			all[k], owner[k] = v, a.Name
		}
	}
	return all, nil
}

func hasSysctls(p Pod) bool {
	s, err := podSysctls(p)
	return err == nil && len(s) > 0
}

// sysctlUnit writes the pod's sysctls with our guest program, or is nil
// when the pod has none. Every app requires it and starts after it. If a
// write fails (a parameter the guest kernel lacks), the pod powers off and
// run reports that the VM ended before the apps did.
func sysctlUnit(p Pod) ([]*unit.UnitOption, error) {
	s, err := podSysctls(p)
	if err != nil || len(s) == 0 {
		return nil, err
	}
	args := []string{"sysctl"}
	for _, k := range slices.Sorted(maps.Keys(s)) {
		args = append(args, k+"="+s[k])
	}
	exec, err := guestCommand("", args...)
	if err != nil {
		return nil, err
	}
	return []*unit.UnitOption{
		unitOpt("Description", "Set the pod's sysctl parameters"),
		unitOpt("DefaultDependencies", "no"),
		unitOpt("FailureAction", "poweroff"),
		service("Type", "oneshot"),
		service("RemainAfterExit", "yes"),
		service("ExecStart", exec),
	}, nil
}
