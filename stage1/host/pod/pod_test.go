package pod

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const imageManifest = `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/web",
"app":{"exec":["/bin/web"],"user":"0","group":"0"}}`

func writePod(t *testing.T, podManifest string, apps ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pod"), []byte(podManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		d := filepath.Join(dir, "stage1/rootfs/opt/stage2", a)
		if err := os.MkdirAll(filepath.Join(d, "rootfs"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "manifest"), []byte(imageManifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const img = `"image":{"name":"example.com/web","id":"sha512-0000000000000000000000000000000000000000000000000000000000000000"}`

func TestLoadEffectiveApp(t *testing.T) {
	// rkt's quirks: acVersion is rkt's version, volumes/isolators null.
	pm := `{"acKind":"PodManifest","acVersion":"1.30.0","volumes":null,"isolators":null,"apps":[
	{"name":"a",` + img + `,"app":{"exec":["/bin/override"],"user":"0","group":"0"}},
	{"name":"b",` + img + `}]}`
	p, err := Load(writePod(t, pm, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.AppNames(), ","); got != "a,b" {
		t.Errorf("apps %s", got)
	}
	if p.Apps[0].App.Exec[0] != "/bin/override" {
		t.Errorf("pod manifest app must win: %v", p.Apps[0].App.Exec)
	}
	if p.Apps[1].App.Exec[0] != "/bin/web" {
		t.Errorf("image app is the fallback: %v", p.Apps[1].App.Exec)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(writePod(t, `{"acKind":"PodManifest","acVersion":"1.30.0","apps":[]}`)); !errors.Is(err, ErrNoApps) {
		t.Errorf("empty pod: %v", err)
	}
	pm := `{"acKind":"PodManifest","acVersion":"1.30.0","apps":[{"name":"a",` + img + `}]}`
	if _, err := Load(writePod(t, pm)); err == nil || !strings.Contains(err.Error(), "app a") {
		t.Errorf("missing app dir: %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("no pod manifest: want an error")
	}
}
