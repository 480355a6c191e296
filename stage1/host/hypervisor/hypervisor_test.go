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

func TestStartVirtioFSDWithout(t *testing.T) {
	if _, err := StartVirtioFSD(qemu.Binary{Path: "/usr/bin/qemu-system-x86_64"}, qemu.Share{Tag: "a", Path: "/a", Socket: t.TempDir() + "/s"}, nil); !errors.Is(err, ErrNoVirtioFSD) {
		t.Errorf("StartVirtioFSD without virtiofsd: %v, want ErrNoVirtioFSD", err)
	}
}
