package hypervisor

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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

func TestCodeSamplerOnlyTCG(t *testing.T) {
	if _, err := (&VM{accel: qemu.KVM}).CodeSampler(); !errors.Is(err, ErrNotEmulated) {
		t.Errorf("CodeSampler under KVM: %v, want ErrNotEmulated", err)
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
	got, err := codeBufferRSS([]byte(smapsSample))
	if err != nil || got != 1332<<10 {
		t.Fatalf("codeBufferRSS = %d, %v; want %d (the largest anonymous executable mapping)", got, err, 1332<<10)
	}
	// QEMU's own code is executable but not anonymous.
	if _, err := codeBufferRSS([]byte(strings.ReplaceAll(smapsSample, "rwxp", "rw-p"))); err == nil {
		t.Error("a listing without an anonymous executable mapping was accepted")
	}
	for _, bad := range []string{"-5 kB", "99999999999999999 kB", "12 MB", "1x kB"} {
		s := strings.Replace(smapsSample, "1332 kB\nPss", bad+"\nPss", 1)
		if _, err := codeBufferRSS([]byte(s)); err == nil {
			t.Errorf("Rss %q was accepted", bad)
		}
	}
}

// Run samples for the pod's life: a sample allocates nothing, and the
// listing is read anew from its start each time, whatever its length.
func TestCodeSampler(t *testing.T) {
	listing := strings.Repeat("7f1000000000-7f1008000000 rw-p 00000000 00:00 0 \nSize: 4 kB\nRss: 4 kB\n", 5000) + smapsSample
	path := filepath.Join(t.TempDir(), "smaps")
	if err := os.WriteFile(path, []byte(listing), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := openCodeSampler(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 2; i++ {
		if got, err := c.Sample(); err != nil || got != 1332<<10 {
			t.Fatalf("sample %d = %d, %v; want %d", i, got, err, 1332<<10)
		}
	}
	if allocs := testing.AllocsPerRun(20, func() { c.Sample() }); allocs != 0 {
		t.Errorf("a sample allocates %v times, want 0", allocs)
	}
}

func TestCodeSamplerBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "smaps")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), smapsLimit+1), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := openCodeSampler(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Sample(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a listing over the limit: %v, want an error", err)
	}
}
