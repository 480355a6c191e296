package qemu

import (
	"fmt"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// tcgAPICBusHz is the rate of QEMU's emulated local APIC timer before its
// divider: one count per nanosecond of QEMU_CLOCK_VIRTUAL
// (hw/intc/apic_common.c).
const tcgAPICBusHz = 1_000_000_000

// tcgTSCkHz is the rate of the guest's TSC under TCG: our QEMU counts it
// in nanoseconds of QEMU_CLOCK_VIRTUAL (qemu/patches/0010).
const tcgTSCkHz = 1_000_000

// KernelCmdline is the guest kernel's command line booting systemd into unit.
// Extra arguments (hostname, machine id, ...) are appended by the caller.
func KernelCmdline(unit string, accel Accel, debug bool, extra ...string) []string {
	c := []string{
		"console=ttyS0",
		// Reboot by triple fault: QEMU (with -no-reboot) then exits.
		"reboot=t",
		// A panic reboots at once, which ends QEMU instead of hanging.
		"panic=-1",
		"root=/dev/vda", "ro", "rootfstype=erofs",
		"init=" + contract.GuestProgram,
		// The emulated timer is known good; its self-check costs a
		// measurable share of boot under TCG.
		"no_timer_check",
		// Per-CPU memory in 4 KiB pages: with the default 2 MiB units,
		// a kernel with memory cgroups spends 4 MiB on bookkeeping for
		// the first per-CPU chunk it adds (an array of one pointer per
		// 4 bytes of the unit), a tenth of an idle guest.
		"percpu_alloc=page",
		// Proactive compaction (for huge pages a small guest does not
		// use) wakes kcompactd twice a second in an idle guest; at 0
		// it sleeps until memory is short.
		"sysctl.vm.compaction_proactiveness=0",
		contract.UnitParam + "=" + unit,
	}
	if accel == TCG {
		// TCG has no TSC-deadline timer, so the kernel would calibrate
		// the local APIC timer against the PIT in real time (~240 ms).
		// Our kernel takes its input clock instead (kernel/patches):
		// QEMU's emulated APIC counts virtual-clock nanoseconds. (The
		// PIT, noapictimer's way, woke an idle guest ~50 times a second:
		// its 16-bit counter cannot sleep longer than 27 ms.)
		c = append(c, fmt.Sprintf("lapic_bus_hz=%d", tcgAPICBusHz))
		// Guest RAM is in 4 KiB host pages (a memfd): free memory can be
		// handed back page by page (see contract.ReportingOrderParam).
		c = append(c, contract.ReportingOrderParam+"=0")
	}
	if !debug {
		c = append(c, "quiet", "systemd.show_status=0", "loglevel=1")
	}
	return append(c, extra...)
}

// TSCArgs are the kernel arguments for the guest's TSC under TCG with our
// QEMU, whose TSC counts virtual-clock nanoseconds (qemu/patches/0010);
// none for KVM or another QEMU (its TCG TSC runs at the host's rate, which
// the guest has to calibrate).
func TSCArgs(accel Accel, bin Binary) []string {
	if accel != TCG || !bin.Bundled {
		return nil
	}
	return []string{
		// Calibrating the TSC against the PIT fails on a slow or busy
		// host, and the guest then falls back to jiffies as its clock,
		// which rules out high-resolution timers and a tickless idle (an
		// idle guest ticked 100 times a second).
		fmt.Sprintf("tsc_early_khz=%d", tcgTSCkHz),
		// That TSC is the virtual clock itself, the same for every
		// vCPU: nothing for the clocksource watchdog to check, whose
		// timer would wake an idle guest twice a second.
		"tsc=reliable",
	}
}
