package units

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
)

func TestAccounts(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("web:x:1000:1000::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("users:x:100:\n"), 0o644)
	p := Pod{Apps: []App{
		{Name: "a", RootfsHost: root, App: types.App{User: "web", Group: "users", SupplementaryGIDs: []int{4242}}},
		{Name: "b", RootfsHost: root, App: types.App{User: "0", Group: "0"}},
	}}
	pw, gr, err := Accounts(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pw), basePasswd) || !strings.Contains(string(pw), "u1000:x:1000:100::/:/usr/sbin/nologin\n") {
		t.Errorf("passwd:\n%s", pw)
	}
	if strings.Count(string(pw), ":x:0:") != 1 {
		t.Errorf("root twice:\n%s", pw)
	}
	for _, want := range []string{"g100:x:100:\n", "g4242:x:4242:\n"} {
		if !strings.Contains(string(gr), want) {
			t.Errorf("group lacks %q:\n%s", want, gr)
		}
	}
}
