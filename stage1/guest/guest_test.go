package guest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBootTimesRoundTrip(t *testing.T) {
	want := BootTimes{KernelMs: 412, TotalMs: 987}
	got, err := ParseBootTimes(want.String() + "\n")
	if err != nil || got != want {
		t.Fatalf("ParseBootTimes = %+v, %v; want %+v", got, err, want)
	}
	if _, err := ParseBootTimes("garbage"); err == nil {
		t.Fatal("want an error for a malformed marker")
	}
}

func TestLinkPorts(t *testing.T) {
	sys := t.TempDir()
	for port, name := range map[string]string{"vport0p1": "org.example.a\n", "vport0p2": ""} {
		if err := os.MkdirAll(filepath.Join(sys, port), 0o755); err != nil {
			t.Fatal(err)
		}
		if name != "" {
			if err := os.WriteFile(filepath.Join(sys, port, "name"), []byte(name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	dst := filepath.Join(t.TempDir(), "ports")
	if err := LinkPorts(sys, dst); err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(filepath.Join(dst, "org.example.a"))
	if err != nil || target != "/dev/vport0p1" {
		t.Fatalf("link = %q, %v", target, err)
	}
	entries, _ := os.ReadDir(dst)
	if len(entries) != 1 {
		t.Fatalf("want one link (unnamed ports skipped), got %d", len(entries))
	}
}
