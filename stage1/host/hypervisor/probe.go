package hypervisor

import (
	"os"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// ProbeHost reads the host facts.
func ProbeHost() qemu.HostFacts {
	var h qemu.HostFacts
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		h.KVMUsable = true
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		h.PVM = true
	}
	return h
}
