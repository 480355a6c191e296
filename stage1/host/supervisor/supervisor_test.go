package supervisor

import (
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
)

func TestTCGBufferSize(t *testing.T) {
	for setting, want := range map[string]int{"": tcgBufferMiB, "16": 16, "1": 1, "2048": 2048} {
		if got, err := tcgBufferSize(setting); err != nil || got != want {
			t.Errorf("tcgBufferSize(%q) = %d, %v; want %d", setting, got, err, want)
		}
	}
	for _, bad := range []string{"0", "-4", "16M", "2049", " 8"} {
		if _, err := tcgBufferSize(bad); err == nil {
			t.Errorf("tcgBufferSize(%q) accepted", bad)
		}
	}
}

func TestSharedFS(t *testing.T) {
	for setting, want := range map[string]hypervisor.Transport{"": hypervisor.NineP, "9p": hypervisor.NineP, "virtiofs": hypervisor.Virtiofs} {
		if got, err := sharedFS(setting); err != nil || got != want {
			t.Errorf("sharedFS(%q) = %q, %v; want %q", setting, got, err, want)
		}
	}
	for _, bad := range []string{"nfs", "VIRTIOFS", "9P"} {
		if _, err := sharedFS(bad); err == nil {
			t.Errorf("sharedFS(%q) accepted", bad)
		}
	}
}
