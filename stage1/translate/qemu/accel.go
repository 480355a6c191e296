package qemu

import (
	"errors"
	"fmt"
)

// Accel is how QEMU runs guest code.
type Accel string

const (
	// KVM runs the guest on the CPU through /dev/kvm.
	KVM Accel = "kvm"
	// TCG emulates the guest CPU in software: slow but works anywhere.
	TCG Accel = "tcg"
)

// AccelEnv forces the accelerator: "kvm", "tcg" or "auto" (the default).
const AccelEnv = "STAGE1_KVM_ACCEL"

// ErrBadAccel is returned for an unusable accelerator setting.
var ErrBadAccel = errors.New("bad accelerator setting")

// HostFacts is what decides the accelerator.
type HostFacts struct {
	// KVMUsable: /dev/kvm opens read-write.
	KVMUsable bool
	// PVM: the host's KVM is kvm_pvm, which only runs guest kernels built
	// with PVM guest support; ours is not, so KVM would crash or hang.
	PVM bool
}

// ChooseAccel picks the accelerator for a setting (the value of AccelEnv).
// It returns a one-line notice when it falls back to TCG on its own.
func ChooseAccel(setting string, h HostFacts) (Accel, string, error) {
	switch setting {
	case "", "auto":
		switch {
		case h.KVMUsable && !h.PVM:
			return KVM, "", nil
		case h.PVM:
			return TCG, "notice: host KVM is kvm_pvm, which cannot run this guest kernel; using TCG (software emulation, slow)", nil
		default:
			return TCG, "notice: /dev/kvm is not usable; using TCG (software emulation, slow)", nil
		}
	case "kvm":
		if !h.KVMUsable {
			return "", "", fmt.Errorf("%w: %s=kvm but /dev/kvm cannot be opened read-write", ErrBadAccel, AccelEnv)
		}
		return KVM, "", nil
	case "tcg":
		return TCG, "", nil
	default:
		return "", "", fmt.Errorf("%w: %s=%q, want kvm, tcg or auto", ErrBadAccel, AccelEnv, setting)
	}
}
