package guest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchMarks reports the names of the entries made in dir from now on (and
// those already there), each once, in the order they appear. systemd makes
// the pod's marks there (contract.MarkDir): the ready and settled socket
// units' FIFOs. Watching for them costs a blocked read, where a notifier
// unit would cost a process's start. The channel closes if the watch fails.
func watchMarks(dir string) (<-chan string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	// Non-blocking: the runtime's poller waits for it, not a thread.
	events := os.NewFile(uintptr(fd), "inotify "+dir)
	// Listed after the watch is set, so none is missed; seen drops the
	// one event of an entry also listed.
	existing, err := os.ReadDir(dir)
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	marks := make(chan string, 8)
	seen := map[string]bool{}
	report := func(name string) {
		if !seen[name] {
			seen[name] = true
			marks <- name
		}
	}
	go func() {
		defer close(marks)
		defer events.Close()
		for _, e := range existing {
			report(e.Name())
		}
		buf := make([]byte, 4096)
		for {
			n, err := events.Read(buf)
			if err != nil {
				fmt.Fprintf(os.Stderr, "stage1-io: watch %s: %v\n", dir, err)
				return
			}
			names, err := parseInotify(buf[:n])
			for _, name := range names {
				report(name)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "stage1-io: watch %s: %v\n", dir, err)
				return
			}
		}
	}()
	return marks, nil
}

var errInotifyShort = errors.New("inotify event cut short")

// parseInotify returns the names in a read of inotify events (those that
// carry one), in order.
func parseInotify(b []byte) ([]string, error) {
	var names []string
	const header = unix.SizeofInotifyEvent
	for len(b) > 0 {
		if len(b) < header {
			return names, errInotifyShort
		}
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := header + int(ev.Len)
		if end > len(b) {
			return names, errInotifyShort
		}
		if name := string(bytes.TrimRight(b[header:end], "\x00")); name != "" {
			names = append(names, name)
		}
		b = b[end:]
	}
	return names, nil
}
