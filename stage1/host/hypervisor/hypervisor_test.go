package hypervisor

import (
	"errors"
	"strings"
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

func TestTranslatedCodeOnlyTCG(t *testing.T) {
	if _, err := (&VM{accel: qemu.KVM}).TranslatedCode(); !errors.Is(err, ErrNotEmulated) {
		t.Errorf("TranslatedCode under KVM: %v, want ErrNotEmulated", err)
	}
}

const smapsSample = `55d0c0a00000-55d0c0b00000 r-xp 00000000 fe:00 1234                       /usr/lib/stage1/qemu-system-x86_64
Size:               1024 kB
Rss:                 700 kB
7f0000000000-7f0004000000 rwxp 00000000 00:00 0 
Size:              65536 kB
KernelPageSize:        4 kB
Rss:                1332 kB
Pss:                1332 kB
7f0004000000-7f0004001000 rwxp 00000000 00:00 0 
Size:                  4 kB
Rss:                   4 kB
7f1000000000-7f1008000000 rw-p 00000000 00:00 0 
Size:             131072 kB
Rss:                9000 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  12 kB
`

func TestCodeBufferRSS(t *testing.T) {
	got, err := codeBufferRSS(strings.NewReader(smapsSample), smapsLimit)
	if err != nil || got != 1332<<10 {
		t.Fatalf("codeBufferRSS = %d, %v; want %d (the largest anonymous executable mapping)", got, err, 1332<<10)
	}
	if _, err := codeBufferRSS(strings.NewReader(smapsSample), int64(len(smapsSample))-1); err == nil {
		t.Error("a listing longer than the limit was accepted")
	}
	// QEMU's own code is executable but not anonymous.
	noCode := strings.ReplaceAll(smapsSample, "rwxp", "rw-p")
	if _, err := codeBufferRSS(strings.NewReader(noCode), smapsLimit); err == nil {
		t.Error("a listing without an anonymous executable mapping was accepted")
	}
	bad := strings.Replace(smapsSample, "1332 kB\nPss", "-5 kB\nPss", 1)
	if _, err := codeBufferRSS(strings.NewReader(bad), smapsLimit); err == nil {
		t.Error("a negative Rss was accepted")
	}
}
