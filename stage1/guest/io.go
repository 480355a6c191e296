package guest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/coreos/go-systemd/v22/journal"
	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/syncio"
)

// drainTime bounds how long the forwarder keeps reading after SIGTERM; the
// apps have been stopped by then, so this only empties the FIFOs.
const drainTime = 200 * time.Millisecond

// ForwardIO runs the I/O forwarder service: it creates the FIFOs, tells
// systemd it is ready, then copies every app's stdout and stderr to the host
// (the stdout and stderr ports, kept apart) and to the journal under the
// app's name, and the host's stdin to the interactive app, until SIGTERM.
func ForwardIO(apps []string, interactive string) error {
	if err := os.MkdirAll(contract.IODir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", contract.IODir, err)
	}
	stdout, err := openPort(contract.StdoutPort, os.O_WRONLY)
	if err != nil {
		return err
	}
	stderr, err := openPort(contract.StderrPort, os.O_WRONLY)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var fifos []*os.File
	for _, app := range apps {
		for _, s := range []struct {
			suffix   string
			port     *syncio.Writer
			priority journal.Priority
		}{{contract.Stdout, syncio.NewWriter(stdout), journal.PriInfo}, {contract.Stderr, syncio.NewWriter(stderr), journal.PriErr}} {
			f, err := makeFIFO(contract.AppFIFO(app, s.suffix))
			if err != nil {
				return err
			}
			fifos = append(fifos, f)
			wg.Add(1)
			go func(app string, f *os.File, port *syncio.Writer, pri journal.Priority) {
				defer wg.Done()
				copyStream(f, port, &journalWriter{app: app, priority: pri})
			}(app, f, s.port, s.priority)
		}
	}
	if interactive != "" {
		if err := forwardStdin(contract.AppFIFO(interactive, contract.Stdin)); err != nil {
			return err
		}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, unix.SIGTERM, unix.SIGINT)
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	<-term
	for _, f := range fifos {
		f.SetReadDeadline(time.Now().Add(drainTime))
	}
	wg.Wait()
	// What the apps wrote last may still wait in journald's socket
	// (journald starts after the apps, and is slow under emulation);
	// the power-off that follows this exit would drop it.
	if err := SyncJournal(); err != nil {
		fmt.Fprintf(os.Stderr, "stage1-io: %v\n", err)
	}
	return nil
}

// forwardStdin copies the host's stdin to the interactive app's stdin FIFO.
func forwardStdin(fifo string) error {
	if err := unix.Mkfifo(fifo, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create FIFO %s: %w", fifo, err)
	}
	port, err := openPort(contract.StdinPort, os.O_RDONLY)
	if err != nil {
		return err
	}
	// The guest kernel drops what arrives on a port nobody holds open, so
	// the host waits for this before sending stdin.
	if err := Send(contract.EventsPort, contract.Event{Kind: contract.EventStdinReady}.String()); err != nil {
		return err
	}
	go func() {
		// Opening for writing waits for the app to open its end: data
		// written to a FIFO that no reader holds open would be lost.
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		io.Copy(f, port)
		// EOF from the host (its stdin ended): closing the only writer
		// gives the app EOF too.
		f.Close()
	}()
	return nil
}

// makeFIFO creates a FIFO and opens it read-write: the forwarder then never
// sees EOF when an app closes its end, and opening never blocks.
func makeFIFO(path string) (*os.File, error) {
	if err := unix.Mkfifo(path, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create FIFO %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open FIFO %s: %w", path, err)
	}
	return f, nil
}

func openPort(name string, flag int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(contract.PortDir, name), flag, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoPort, name)
	} else if err != nil {
		return nil, fmt.Errorf("open port %s: %w", name, err)
	}
	return f, nil
}

// copyStream copies r to the host port at once (chunks as they come, so
// prompts without a newline show up) and, line by line, to the journal.
func copyStream(r io.Reader, port io.Writer, j *journalWriter) {
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			port.Write(buf[:n])
			j.Write(buf[:n])
		}
		if err != nil {
			j.Flush()
			return
		}
	}
}

// journalWriter sends complete lines to journald as the app's messages.
type journalWriter struct {
	app      string
	priority journal.Priority
	partial  []byte
}

func (j *journalWriter) Write(p []byte) {
	j.partial = append(j.partial, p...)
	for {
		i := bytes.IndexByte(j.partial, '\n')
		if i < 0 {
			break
		}
		j.send(string(j.partial[:i]))
		j.partial = j.partial[i+1:]
	}
}

func (j *journalWriter) Flush() {
	if len(j.partial) > 0 {
		j.send(string(j.partial))
		j.partial = nil
	}
}

func (j *journalWriter) send(line string) {
	// Best effort: a journal hiccup must never stall the app's output.
	journal.Send(line, j.priority, map[string]string{"SYSLOG_IDENTIFIER": j.app, "RKT_APP": j.app})
}
