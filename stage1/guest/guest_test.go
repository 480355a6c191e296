package guest

import (
	"os"
	"path/filepath"
	"testing"
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
		code, status string
		want         int
		err          bool
	}{
		{"exited", "0", 0, false},
		{"exited", "42", 42, false},
		{"exited", "255", 255, false},
		{"killed", "KILL", 9, false},
		{"killed", "TERM", 15, false},
		{"dumped", "SEGV", 11, false},
		{"", "", 1, false},
		{"exited", "x", 0, true},
		{"killed", "NOPE", 0, true},
		{"weird", "1", 0, true},
	} {
		got, err := ExitStatus(tt.code, tt.status)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ExitStatus(%q, %q) = %d, %v; want %d (err %v)", tt.code, tt.status, got, err, tt.want, tt.err)
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

func TestParseMainStatus(t *testing.T) {
	for _, tt := range []struct{ out, code, status string }{
		{"ExecMainCode=1\nExecMainStatus=42\n", "exited", "42"},
		{"ExecMainCode=2\nExecMainStatus=9\n", "killed", "9"},
		{"ExecMainStatus=11\nExecMainCode=3\n", "dumped", "11"},
		{"ExecMainCode=0\nExecMainStatus=0\n", "", ""},
	} {
		c, s, err := ParseMainStatus(tt.out)
		if err != nil || c != tt.code || s != tt.status {
			t.Errorf("ParseMainStatus(%q) = %q, %q, %v", tt.out, c, s, err)
		}
		// The pair must be understood by ExitStatus.
		if _, err := ExitStatus(c, s); err != nil {
			t.Errorf("ExitStatus(%q, %q): %v", c, s, err)
		}
	}
	if _, _, err := ParseMainStatus("garbage"); err == nil {
		t.Error("want an error for unexpected output")
	}
}
