package units

import "github.com/coreos/go-systemd/v22/unit"

// Kernel interfaces rkt kept away from apps unless run with
// --insecure-options=paths (our --disable-paths): paths as the app sees
// them, under the /proc and /sys systemd mounts in its RootDirectory=.
var (
	// readOnlyKernelPaths can be read but not written.
	readOnlyKernelPaths = []string{
		"/proc/bus",
		"/proc/sys/kernel/core_pattern",
		"/proc/sys/kernel/modprobe",
		"/proc/sys/vm/panic_on_oom",
		"/proc/sysrq-trigger",
		// rkt protected /sys/block, bus, class, dev, devices and kernel
		// one by one and hid /sys/fs; the rest of /sys is hidden below.
		// One read-only /sys is the same protection for one mount
		// instead of eight: each costs systemd a pass over the mount
		// table at app start. /sys/fs stays readable, so an app can read
		// its own cgroup limits (rkt's apps could, from their read-only
		// cgroup mount) but not raise them.
		"/sys",
	}
	// hiddenKernelPaths cannot be accessed at all.
	hiddenKernelPaths = []string{
		"/proc/config.gz",
		"/proc/kallsyms",
		"/proc/sched_debug",
		"/proc/kcore",
		"/proc/kmem",
		"/proc/mem",
		"/sys/firmware",
		"/sys/hypervisor",
		"/sys/module",
		"/sys/power",
	}
)

// protectedPathOptions applies those restrictions to the app whose root
// directory is root. systemd 252 takes these paths in the guest's own view
// (it drops, silently, any path outside RootDirectory=), hence the prefix;
// it applies them after mounting /proc and /sys there. The "-" prefix
// makes a path the guest kernel does not have (e.g. /proc/kmem) no error.
func protectedPathOptions(root string) []*unit.UnitOption {
	var opts []*unit.UnitOption
	for _, p := range readOnlyKernelPaths {
		opts = append(opts, service("ReadOnlyPaths", "-"+root+p))
	}
	for _, p := range hiddenKernelPaths {
		opts = append(opts, service("InaccessiblePaths", "-"+root+p))
	}
	return opts
}
