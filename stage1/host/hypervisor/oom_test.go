package hypervisor

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOOMKills(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"v1": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
		"v2": "low 0\nhigh 0\nmax 9\noom 4\noom_kill 3\noom_group_kill 0\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		if n, ok := (oomCounter{file: p}).kills(); !ok || n != 3 {
			t.Errorf("%s: %d, %v; want 3", name, n, ok)
		}
	}
	if _, ok := (oomCounter{file: filepath.Join(dir, "missing")}).kills(); ok {
		t.Error("a missing file gave a count")
	}
	if _, ok := (oomCounter{}).kills(); ok {
		t.Error("no file gave a count")
	}
}
