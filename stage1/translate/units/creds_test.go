package units

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/appc/spec/schema/types"
)

const testPasswd = `# comment
root:x:0:0:root:/root:/bin/sh

+nis:x:7:7::/:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
web:x:1000:1001:web server:/srv:/bin/sh
web:x:2000:2000:duplicate, ignored:/:/bin/sh
broken:x:notanumber:0::/:/bin/sh
crlf:x:33:33::/:/bin/sh` + "\r\n"

const testGroup = `root:x:0:
daemon:x:1:
www:x:1001:web
`

// fakeRootfs builds a rootfs with an /etc/passwd and /etc/group.
func fakeRootfs(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	writeFile(t, root, "etc/passwd", testPasswd)
	writeFile(t, root, "etc/group", testGroup)
	return root
}

func writeFile(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, root, name, target string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func credsApp(root, user, group string, sgids ...int) App {
	return App{Name: "a", RootfsHost: root, App: types.App{
		Exec: types.Exec{"/bin/a"}, User: user, Group: group, SupplementaryGIDs: sgids,
	}}
}

func TestResolveCredentials(t *testing.T) {
	root := fakeRootfs(t)
	writeFile(t, root, "srv/owned", "x")
	if err := os.Chown(filepath.Join(root, "srv/owned"), 4321, 8765); err != nil {
		t.Skipf("chown needs root: %v", err)
	}
	symlink(t, root, "srv/link", "/srv/owned")
	tests := []struct {
		user, group string
		uid, gid    uint32
	}{
		{"0", "0", 0, 0},
		{"1234", "5678", 1234, 5678},
		{"007", "0", 7, 0},
		{"root", "root", 0, 0},
		{"web", "www", 1000, 1001},
		{"daemon", "daemon", 1, 1},
		{"crlf", "0", 33, 0},
		{"/srv/owned", "/srv/owned", 4321, 8765},
		{"/srv/link", "/srv/link", 4321, 8765},
		{"web", "/srv/owned", 1000, 8765},
	}
	for _, tt := range tests {
		c, err := ResolveCredentials(credsApp(root, tt.user, tt.group))
		if err != nil {
			t.Errorf("user %q group %q: %v", tt.user, tt.group, err)
			continue
		}
		if c.UID != tt.uid || c.GID != tt.gid {
			t.Errorf("user %q group %q = %d:%d, want %d:%d", tt.user, tt.group, c.UID, c.GID, tt.uid, tt.gid)
		}
	}
	c, err := ResolveCredentials(credsApp(root, "0", "0", 10, 0, 65533))
	if err != nil || len(c.SupplementaryGIDs) != 3 || c.SupplementaryGIDs[2] != 65533 {
		t.Errorf("supplementary groups = %v, %v", c.SupplementaryGIDs, err)
	}
}

// Numeric ids need no rootfs at all.
func TestResolveNumericWithoutRootfs(t *testing.T) {
	c, err := ResolveCredentials(credsApp("", "10", "20"))
	if err != nil || c.UID != 10 || c.GID != 20 {
		t.Errorf("got %+v, %v", c, err)
	}
	if _, err := ResolveCredentials(credsApp("", "web", "0")); err == nil {
		t.Error("a name without a rootfs resolved")
	}
}

func TestResolveCredentialsErrors(t *testing.T) {
	root := fakeRootfs(t)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		root        string
		user, group string
		sgids       []int
		want        error
	}{
		{"unknown user", root, "nobody-here", "0", nil, ErrUnknownUser},
		{"unknown group", root, "0", "nogroup-here", nil, ErrUnknownGroup},
		{"user name is a group", root, "www", "0", nil, ErrUnknownUser},
		{"NIS entry not a user", root, "+nis", "0", nil, ErrUnknownUser},
		{"empty user", root, "", "0", nil, ErrUnknownUser},
		{"empty group", root, "0", "", nil, ErrUnknownGroup},
		{"no /etc/passwd", empty, "web", "0", nil, ErrUnknownUser},
		{"no /etc/group", empty, "0", "www", nil, ErrUnknownGroup},
		{"missing file", root, "/no/such/file", "0", nil, ErrUnknownUser},
		{"missing file for group", root, "0", "/no/such/file", nil, ErrUnknownGroup},
		{"uid -1", root, "4294967295", "0", nil, ErrUnrepresentable},
		{"uid 65535", root, "65535", "0", nil, ErrUnrepresentable},
		{"uid too big", root, "4294967296", "0", nil, ErrUnrepresentable},
		{"negative supplementary gid", root, "0", "0", []int{-1}, ErrUnrepresentable},
		{"supplementary gid 65535", root, "0", "0", []int{65535}, ErrUnrepresentable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ResolveCredentials(credsApp(tt.root, tt.user, tt.group, tt.sgids...))
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := ResolveCredentials(credsApp(root, "broken", "0")); err == nil {
		t.Error("an entry with a bad uid resolved")
	}
}

// The rootfs is untrusted: no symlink or ".." may make us read the host's
// files. Each case plants a trap; the host's /etc/passwd defines root (0),
// and a decoy outside the rootfs defines "evil".
func TestResolveStaysInRootfs(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "rootfs")
	writeFile(t, base, "outside/etc/passwd", "root:x:0:0::/:/bin/sh\nevil:x:666:666::/:/bin/sh\n")
	writeFile(t, base, "outside/etc/group", "root:x:0:\nevil:x:666:\n")
	writeFile(t, base, "outside/owned", "")
	if err := os.Chown(filepath.Join(base, "outside/owned"), 666, 666); err != nil {
		t.Skipf("chown needs root: %v", err)
	}
	// What a confined lookup must find instead, for the traps that point
	// at a path that also exists inside the rootfs.
	writeFile(t, root, "outside/etc/passwd", "evil:x:1111:1111::/:/bin/sh\n")

	t.Run("absolute symlink to the host's passwd", func(t *testing.T) {
		symlink(t, root, "etc/passwd", "/../../../etc/passwd")
		// Inside the rootfs this names /etc/passwd itself: a loop.
		_, err := ResolveCredentials(credsApp(root, "root", "0"))
		if err == nil {
			t.Fatal("resolved root through a symlink that leaves the rootfs")
		}
		if !errors.Is(err, syscall.ELOOP) {
			t.Errorf("err = %v, want a symlink loop", err)
		}
	})
	t.Run("relative symlink climbing out", func(t *testing.T) {
		symlink(t, root, "etc/passwd", "../../../../../../../outside/etc/passwd")
		c, err := ResolveCredentials(credsApp(root, "evil", "0"))
		if err != nil || c.UID != 1111 {
			t.Errorf("got %+v, %v; want uid 1111 from the rootfs's own file", c, err)
		}
	})
	t.Run("absolute symlink to the decoy", func(t *testing.T) {
		symlink(t, root, "etc/passwd", filepath.Join(base, "outside/etc/passwd"))
		_, err := ResolveCredentials(credsApp(root, "evil", "0"))
		if err == nil {
			t.Error("read the decoy outside the rootfs")
		}
	})
	t.Run("symlinked /etc directory", func(t *testing.T) {
		os.RemoveAll(filepath.Join(root, "etc"))
		symlink(t, root, "etc", "/../outside/etc")
		c, err := ResolveCredentials(credsApp(root, "evil", "0"))
		if err != nil || c.UID != 1111 {
			t.Errorf("got %+v, %v; want uid 1111 from the rootfs's own file", c, err)
		}
		os.Remove(filepath.Join(root, "etc"))
	})
	t.Run("dot-dot in a user path", func(t *testing.T) {
		_, err := ResolveCredentials(credsApp(root, "/../outside/owned", "0"))
		if !errors.Is(err, ErrUnknownUser) {
			t.Errorf("err = %v, want ErrUnknownUser (no such file inside the rootfs)", err)
		}
	})
	t.Run("symlink as a group path", func(t *testing.T) {
		symlink(t, root, "srv/owned", filepath.Join(base, "outside/owned"))
		_, err := ResolveCredentials(credsApp(root, "0", "/srv/owned"))
		if !errors.Is(err, ErrUnknownGroup) {
			t.Errorf("err = %v, want ErrUnknownGroup", err)
		}
	})
	t.Run("magic link", func(t *testing.T) {
		writeFile(t, root, "etc/group", "root:x:0:\n")
		symlink(t, root, "etc/passwd", "/proc/self/root/etc/passwd")
		// No /proc inside the rootfs: not found. Were one mounted, the
		// magic link would be refused.
		_, err := ResolveCredentials(credsApp(root, "root", "0"))
		if err == nil {
			t.Error("resolved root through /proc/self/root")
		}
	})
	t.Run("FIFO as /etc/passwd", func(t *testing.T) {
		os.Remove(filepath.Join(root, "etc/passwd"))
		if err := syscall.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Must fail at once, not wait for a writer.
		if _, err := ResolveCredentials(credsApp(root, "root", "0")); err == nil {
			t.Error("read a FIFO as /etc/passwd")
		}
	})
	t.Run("directory as /etc/group", func(t *testing.T) {
		os.Remove(filepath.Join(root, "etc/group"))
		if err := os.Mkdir(filepath.Join(root, "etc/group"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := ResolveCredentials(credsApp(root, "0", "root")); err == nil {
			t.Error("read a directory as /etc/group")
		}
	})
}

func TestLookupDBSizeLimit(t *testing.T) {
	root := filepath.Join(t.TempDir(), "rootfs")
	writeFile(t, root, "etc/passwd", "")
	if err := os.Truncate(filepath.Join(root, "etc/passwd"), maxDBSize+1); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveCredentials(credsApp(root, "root", "0")); err == nil {
		t.Error("read an oversized /etc/passwd")
	}
}
