package guest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/godbus/dbus/v5"
)

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

func TestExitStatus(t *testing.T) {
	for _, tt := range []struct {
		code, status int32
		want         int
		err          bool
	}{
		{mainExited, 0, 0, false},
		{mainExited, 42, 42, false},
		{mainExited, 255, 255, false},
		{mainKilled, 9, 9, false},
		{mainKilled, 15, 15, false},
		{mainDumped, 11, 11, false},
		{mainNeverRan, 0, 1, false},
		{mainExited, 256, 0, true},
		{mainExited, -1, 0, true},
		{mainKilled, 0, 0, true},
		{mainKilled, 65, 0, true},
		{7, 1, 0, true},
	} {
		got, err := ExitStatus(tt.code, tt.status)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ExitStatus(%d, %d) = %d, %v; want %d (err %v)", tt.code, tt.status, got, err, tt.want, tt.err)
		}
	}
}

func TestPodEnd(t *testing.T) {
	exited := map[string]bool{"a": true}
	f := func(a string) bool { return exited[a] }
	if got := PodEnd(0, []string{"a", "b"}, f); got != podRuns {
		t.Errorf("b still runs: %v, want the pod to go on", got)
	}
	if got := PodEnd(3, []string{"a", "b"}, f); got != podStops {
		t.Errorf("a failed while b runs: %v, want b stopped", got)
	}
	exited["b"] = true
	if got := PodEnd(0, []string{"a", "b"}, f); got != podEnded {
		t.Errorf("all apps done: %v, want the pod ended", got)
	}
	if got := PodEnd(3, []string{"a", "b"}, f); got != podEnded {
		t.Errorf("the last app failed: %v, want the pod ended (nothing left to stop)", got)
	}
}

func TestMayHaveEnded(t *testing.T) {
	for state, want := range map[string]bool{"inactive": true, "failed": true, "active": false, "activating": false, "deactivating": false} {
		if got := mayHaveEnded(map[string]dbus.Variant{"ActiveState": dbus.MakeVariant(state)}); got != want {
			t.Errorf("ActiveState %s: %v, want %v", state, got, want)
		}
	}
	// A change that does not say is checked.
	if !mayHaveEnded(map[string]dbus.Variant{"SubState": dbus.MakeVariant("dead")}) {
		t.Error("a change without ActiveState: want it checked")
	}
}
