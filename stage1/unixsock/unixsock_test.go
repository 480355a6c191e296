package unixsock

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A socket whose path is longer than a socket address holds is listened
// on, reached and removed like a short one.
func TestLongPath(t *testing.T) {
	for _, n := range []int{10, MaxPath + 1, 300} {
		sub := t.TempDir()
		for len(sub)+len("/x.sock") < n {
			sub = filepath.Join(sub, strings.Repeat("d", 50))
		}
		if err := os.MkdirAll(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(sub, "x.sock")
		ln, err := Listen(path)
		if err != nil {
			t.Fatalf("%d bytes: listen: %v", len(path), err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode()&fs.ModeSocket == 0 {
			t.Fatalf("%d bytes: no socket at the path: %v", len(path), err)
		}
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Write([]byte("hi"))
				c.Close()
			}
		}()
		c, err := Dial(path)
		if err != nil {
			t.Fatalf("%d bytes: dial: %v", len(path), err)
		}
		b := make([]byte, 2)
		if _, err := c.Read(b); err != nil || string(b) != "hi" {
			t.Fatalf("%d bytes: read %q, %v", len(path), b, err)
		}
		c.Close()
		ln.Close()
		if len(path) > MaxPath {
			// The socket stays until its owner removes it by its path.
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("%d bytes: socket gone with its listener: %v", len(path), err)
			}
			os.Remove(path)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%d bytes: socket left after close: %v", len(path), err)
		}
	}
}

// A base name too long for even the short form is a clear error.
func TestBaseTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), strings.Repeat("s", 120))
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "longer than a socket address") {
		t.Fatalf("listen: %v", err)
	}
}
