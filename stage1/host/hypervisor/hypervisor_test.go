package hypervisor

import (
	"errors"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

func TestReleaseWithoutQMP(t *testing.T) {
	if err := (&VM{}).ReleaseBootMemory(time.Second); !errors.Is(err, ErrNoQMP) {
		t.Errorf("err = %v, want ErrNoQMP", err)
	}
}

// Only TCG has translations to flush: under KVM there is nothing to ask
// QEMU, under TCG the request needs QMP.
func TestFlushTranslationsOnlyTCG(t *testing.T) {
	if err := (&VM{accel: qemu.KVM}).FlushTranslations(time.Second); err != nil {
		t.Errorf("KVM: %v, want nothing done", err)
	}
	if err := (&VM{accel: qemu.TCG}).FlushTranslations(time.Second); !errors.Is(err, ErrNoQMP) {
		t.Errorf("TCG without QMP: %v, want ErrNoQMP", err)
	}
}

func TestStartVirtioFSDWithout(t *testing.T) {
	if _, err := StartVirtioFSD(qemu.Binary{Path: "/usr/bin/qemu-system-x86_64"}, qemu.Share{Tag: "a", Path: "/a", Socket: t.TempDir() + "/s"}, nil); !errors.Is(err, ErrNoVirtioFSD) {
		t.Errorf("StartVirtioFSD without virtiofsd: %v, want ErrNoVirtioFSD", err)
	}
}

// QEMU never starts unconfined: a binary without a jailer is refused.
func TestStartNeedsJailer(t *testing.T) {
	c := qemu.Config{
		Binary: qemu.Binary{Path: "/usr/bin/qemu-system-x86_64"}, Accel: qemu.TCG,
		Kernel: "/k", Image: "/i", MemoryMiB: 128, CPUs: 1,
	}
	if _, err := Start(c, t.TempDir()+"/jail", nil); !errors.Is(err, ErrNoJailer) {
		t.Errorf("Start without a jailer: %v, want ErrNoJailer", err)
	}
}
