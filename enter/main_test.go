package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// captureStderr runs f with os.Stderr redirected and returns what it wrote.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	f()
	os.Stderr = old
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--pid=1", "--appname=a", "--"},
		{"--pid=1", "--", "sh"},
		{"--bogus", "--appname=a", "--", "sh"},
	} {
		var code int
		msg := captureStderr(t, func() { code = run(args) })
		if code != exitUsage || !strings.Contains(msg, "usage: enter") {
			t.Errorf("%q: exit %d, stderr %q", args, code, msg)
		}
	}
}

func TestPodNotRunning(t *testing.T) {
	t.Chdir(t.TempDir())
	var code int
	msg := captureStderr(t, func() { code = run([]string{"--pid=1", "--appname=a", "--", "sh"}) })
	if code != exitFailed || !strings.Contains(msg, "pod is not running") {
		t.Errorf("exit %d, stderr %q", code, msg)
	}
}

func TestAgentErrorStatus(t *testing.T) {
	// A fake agent refusing with a status: enter exits with it.
	dir := t.TempDir()
	t.Chdir(dir)
	l, err := net.Listen("unix", contract.AgentSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, `{"version":1,"error":"exec: nope: not found","status":127}`+"\n")
	}()
	var code int
	msg := captureStderr(t, func() { code = run([]string{"--pid=1", "--appname=a", "--", "nope"}) })
	if code != 127 || !strings.Contains(msg, "exec: nope: not found") {
		t.Errorf("exit %d, stderr %q", code, msg)
	}
}
