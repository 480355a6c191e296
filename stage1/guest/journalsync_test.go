package guest

import (
	"bufio"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeJournald answers one varlink call on socket with reply, after
// checking it is a Synchronize call.
func fakeJournald(t *testing.T, socket, reply string) {
	t.Helper()
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		call, err := bufio.NewReader(c).ReadString(0)
		if err != nil || !strings.Contains(call, `"io.systemd.Journal.Synchronize"`) {
			t.Errorf("call %q, %v", call, err)
			return
		}
		c.Write([]byte(reply + "\x00"))
	}()
}

func TestSyncJournal(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	fakeJournald(t, ok, `{"parameters":{}}`)
	if err := syncJournal(ok, time.Now().Add(5*time.Second)); err != nil {
		t.Errorf("sync: %v", err)
	}

	failing := filepath.Join(dir, "failing")
	fakeJournald(t, failing, `{"error":"io.systemd.System"}`)
	if err := syncJournal(failing, time.Now().Add(5*time.Second)); err == nil || !strings.Contains(err.Error(), "io.systemd.System") {
		t.Errorf("error reply: %v", err)
	}

	// journald still starting: the socket appears later.
	late := filepath.Join(dir, "late")
	go func() {
		time.Sleep(200 * time.Millisecond)
		fakeJournald(t, late, `{}`)
	}()
	if err := syncJournal(late, time.Now().Add(5*time.Second)); err != nil {
		t.Errorf("late journald: %v", err)
	}

	start := time.Now()
	if err := syncJournal(filepath.Join(dir, "never"), time.Now().Add(300*time.Millisecond)); err == nil {
		t.Error("no journald: want an error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %v, want ~300ms", d)
	}
}
