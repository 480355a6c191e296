package guest

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func nextMark(t *testing.T, marks <-chan string) string {
	t.Helper()
	select {
	case m, ok := <-marks:
		if !ok {
			t.Fatal("the watch ended")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no mark reported within 5 s")
	}
	return ""
}

// A mark made before the watch and one made after are each reported once,
// in the order they appeared, as systemd's FIFOs are.
func TestWatchMarks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "marks")
	marks, err := watchMarks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "ready"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m := nextMark(t, marks); m != "ready" {
		t.Fatalf("mark = %q, want ready", m)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "settled"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m := nextMark(t, marks); m != "settled" {
		t.Fatalf("mark = %q, want settled", m)
	}
	select {
	case m := <-marks:
		t.Fatalf("mark %q reported again", m)
	case <-time.After(100 * time.Millisecond):
	}

	// A watch set up when a mark exists already reports it.
	again, err := watchMarks(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{nextMark(t, again): true, nextMark(t, again): true}
	if !got["ready"] || !got["settled"] {
		t.Errorf("marks already there: %v", got)
	}
}

func TestParseInotify(t *testing.T) {
	// Two events as the kernel lays them out: a header, then the name
	// padded with NULs to its length.
	event := func(name string, padded int) []byte {
		b := make([]byte, unix.SizeofInotifyEvent+padded)
		ne := unix.InotifyEvent{Wd: 1, Mask: unix.IN_CREATE, Len: uint32(padded)}
		copy(b, (*[unix.SizeofInotifyEvent]byte)(unsafe.Pointer(&ne))[:])
		copy(b[unix.SizeofInotifyEvent:], name)
		return b
	}
	buf := append(event("ready", 16), event("settled", 16)...)
	names, err := parseInotify(buf)
	if err != nil || len(names) != 2 || names[0] != "ready" || names[1] != "settled" {
		t.Errorf("parseInotify = %q, %v", names, err)
	}
	// Cut short, in the header or in the name: what came whole is kept.
	for _, n := range []int{len(buf) - 1, len(buf) - 20, unix.SizeofInotifyEvent - 1} {
		names, err := parseInotify(buf[:n])
		if !errors.Is(err, errInotifyShort) {
			t.Errorf("%d bytes: err = %v", n, err)
		}
		if n > unix.SizeofInotifyEvent+16 && (len(names) != 1 || names[0] != "ready") {
			t.Errorf("%d bytes: names = %q", n, names)
		}
	}
}
