package guest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/coreos/go-systemd/v22/journal"
	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/agentproto"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/syncio"
)

// ForwardIO runs the I/O forwarder service. systemd starts it at boot,
// before the template point, so that no clone waits for a program's start:
// it tells systemd it is ready at once and waits for the pod's I/O from
// the configure program (ioconfig.go). Then it creates the FIFOs, watches
// the marks and starts the guest agent and the copies, all before it
// answers and the configure program's end starts the apps. It copies
// every app's stdout and stderr to the host (the stdout and stderr ports,
// kept apart) and to the journal under the app's name, and the host's
// stdin to the interactive app. With tty, the interactive app gets a
// terminal instead (contract.TTYPath, a pseudo-terminal the forwarder
// holds): what it shows goes to the stdout port, the host's stdin is
// typed into it. The same process serves the guest agent (enter, stop;
// see agent).
//
// The output ends in one of two ways, each after the apps have stopped:
// every app has ended (the exit reporter says so), and the pod ends at
// once (endAtOnce); or SIGTERM, from the guest's power-off (the apps are
// ordered after this service). Either way the forwarder reports the apps'
// ends, empties the FIFOs and the terminal, and waits for the host to
// confirm it has all the output.
func ForwardIO() error {
	term := make(chan os.Signal, 1)
	signal.Notify(term, unix.SIGTERM, unix.SIGINT)
	l, err := listenIOConfig()
	if err != nil {
		return err
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		l.Close()
		return fmt.Errorf("notify systemd: %w", err)
	}
	conn, c, err := awaitIOConfig(l, term)
	l.Close()
	os.Remove(contract.IOConfigSocket)
	if conn == nil {
		return err // stopped before any pod, or no handover
	}
	var pod *podIO
	if err == nil {
		pod, err = servePod(c)
	}
	answerIOConfig(conn, err)
	conn.Close()
	if err != nil {
		return err
	}
	pod.f.untilEnd(newExitReporter(c.Apps), pod.agent, term, pod.settled)
	return nil
}

// podIO is what the forwarder serves a pod with.
type podIO struct {
	f       *forwarder
	agent   *agent // nil if it could not start
	settled chan struct{}
}

// servePod starts serving the pod c describes: the FIFOs and the copies,
// the marks' watch and the agent, so that "ready", and enter right after
// it, find them up.
func servePod(c contract.IOConfig) (*podIO, error) {
	f, err := startForwarding(c.Apps, c.Interactive, c.TTY)
	if err != nil {
		return nil, err
	}
	marks, err := watchMarks(contract.MarkDir)
	if err != nil {
		return nil, err
	}
	p := &podIO{f: f, settled: make(chan struct{})}
	go reportMarks(marks, p.settled)
	if p.agent, err = startAgent(); err != nil {
		// The pod runs without enter rather than not at all.
		fmt.Fprintf(os.Stderr, "stage1-io: no guest agent: %v\n", err)
	}
	return p, nil
}

// forwarder is the I/O forwarder's state: the ports, and the copies from
// the FIFOs (and the terminal) to them.
type forwarder struct {
	stdoutPort     *os.File
	stdout, stderr *syncio.Writer
	fifos          []*os.File
	copies         sync.WaitGroup
}

// startForwarding opens the ports and starts the copies: from each app's
// FIFOs to the ports and the journal, and from the stdin port to the
// interactive app's stdin or terminal.
func startForwarding(apps []string, interactive string, tty bool) (*forwarder, error) {
	if err := os.MkdirAll(contract.IODir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", contract.IODir, err)
	}
	// Read-write: the host's acknowledgement comes back on it.
	stdoutPort, err := openPort(contract.StdoutPort, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	stderrPort, err := openPort(contract.StderrPort, os.O_WRONLY)
	if err != nil {
		return nil, err
	}
	// One writer per port, shared by every app: a chunk reaches the host
	// whole, never interleaved with another app's.
	f := &forwarder{stdoutPort: stdoutPort, stdout: syncio.NewWriter(stdoutPort), stderr: syncio.NewWriter(stderrPort)}
	if f.fifos, err = startCopies(apps, f.stdout, f.stderr, &f.copies); err != nil {
		return nil, err
	}
	if interactive != "" {
		master, err := startInput(interactive, tty, f.stdout, &f.copies)
		if err != nil {
			return nil, err
		}
		if master != nil {
			f.fifos = append(f.fifos, master)
		}
	}
	return f, nil
}

// untilEnd runs the exit reporter (from when the boot is over, settled, or
// after reporterDelay) until the pod's end: every app ended (then the pod
// ends at once) or term (the power-off).
func (f *forwarder) untilEnd(exits *exitReporter, ag *agent, term <-chan os.Signal, settled <-chan struct{}) {
	wake := time.NewTimer(reporterDelay)
	startReporter := func() {
		if err := exits.start(); err != nil {
			fmt.Fprintf(os.Stderr, "stage1-io: %v\n", err)
			wake.Reset(time.Second)
		}
	}
	for {
		select {
		case <-settled:
			settled = nil
			startReporter()
		case <-wake.C:
			startReporter()
		case <-exits.allEnded:
			if err := endAtOnce(f.drain); err != nil {
				fmt.Fprintf(os.Stderr, "stage1-io: %v\n", err)
			}
			// The host stops the VM now; a power-off meanwhile finds
			// nothing left to do.
			<-term
			return
		case <-term:
			// The apps' units have all stopped: report the ends not
			// seen yet before the output's. Meanwhile enter's
			// commands are hung up.
			agentStopped := make(chan struct{})
			go func() {
				if ag != nil {
					ag.stop()
				}
				close(agentStopped)
			}()
			startReporter()
			exits.sweep()
			f.drain()
			<-agentStopped
			return
		}
	}
}

// drain, once the apps have stopped, passes on what is left of their
// output and waits until journald has stored it and the host has taken it.
func (f *forwarder) drain() {
	// Wake the copies from their blocking reads: each then takes what is
	// left in its FIFO without waiting, and ends.
	for _, fifo := range f.fifos {
		fifo.SetReadDeadline(time.Now())
	}
	f.copies.Wait()
	// What the apps wrote last may still wait in journald's socket
	// (journald starts after the apps, and is slow under emulation); a
	// power-off, or the host's stop, would drop it.
	if err := SyncJournal(); err != nil {
		fmt.Fprintf(os.Stderr, "stage1-io: %v\n", err)
	}
	if err := confirmOutput(f.stdoutPort, f.stdout.Written(), f.stderr.Written()); err != nil {
		// The host finds the loss too (its counts fall short) and fails.
		fmt.Fprintf(os.Stderr, "stage1-io: %v\n", err)
	}
}

// reporterDelay bounds the wait for the settled mark before the exit
// reporter starts anyway.
const reporterDelay = 20 * time.Second

// startCopies creates each app's stdout and stderr FIFOs and starts
// copying them to the ports (and the journal), counted in wg.
func startCopies(apps []string, stdout, stderr *syncio.Writer, wg *sync.WaitGroup) ([]*os.File, error) {
	var fifos []*os.File
	for _, app := range apps {
		for _, s := range []struct {
			suffix   string
			port     *syncio.Writer
			priority journal.Priority
		}{{contract.Stdout, stdout, journal.PriInfo}, {contract.Stderr, stderr, journal.PriErr}} {
			f, err := makeFIFO(contract.AppFIFO(app, s.suffix))
			if err != nil {
				return nil, err
			}
			fifos = append(fifos, f)
			wg.Add(1)
			go func(app string, f *os.File, port *syncio.Writer, pri journal.Priority) {
				defer wg.Done()
				copyStream(f, port, &journalWriter{app: app, priority: pri})
			}(app, f, s.port, s.priority)
		}
	}
	return fifos, nil
}

// confirmOutput tells the host how many bytes went to each port and waits
// for its acknowledgement on the stdout port: bytes written to a port may
// still wait in the VM's queues, and a power-off would drop them.
func confirmOutput(stdoutPort *os.File, stdoutBytes, stderrBytes int64) error {
	e := contract.Event{Kind: contract.EventOutputEnd, StdoutBytes: stdoutBytes, StderrBytes: stderrBytes}
	if err := Send(contract.EventsPort, e.String()); err != nil {
		return err
	}
	acked := make(chan error, 1)
	go func() {
		b := make([]byte, len(contract.OutputAck))
		_, err := io.ReadFull(stdoutPort, b)
		acked <- err
	}()
	select {
	case err := <-acked:
		if err != nil {
			return fmt.Errorf("wait for the host to take the output: %w", err)
		}
		return nil
	case <-time.After(contract.OutputAckTimeout):
		return fmt.Errorf("the host did not take the apps' last output within %v", contract.OutputAckTimeout)
	}
}

// startInput connects the host's stdin to the interactive app: to its
// terminal (made here, returned: its output is drained like the FIFOs) or
// to its stdin FIFO.
func startInput(app string, tty bool, stdout *syncio.Writer, wg *sync.WaitGroup) (*os.File, error) {
	if tty {
		master, err := startTerminal(stdout, wg)
		if err != nil {
			return nil, err
		}
		return master, forwardStdin(func() (io.WriteCloser, error) { return nopWriteCloser{master}, nil })
	}
	fifo := contract.AppFIFO(app, contract.Stdin)
	if err := unix.Mkfifo(fifo, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create FIFO %s: %w", fifo, err)
	}
	// Opening for writing waits for the app to open its end: data written
	// to a FIFO that no reader holds open would be lost. Closing the only
	// writer at the host's EOF gives the app EOF.
	return nil, forwardStdin(func() (io.WriteCloser, error) { return os.OpenFile(fifo, os.O_WRONLY, 0) })
}

// forwardStdin copies the host's stdin (the stdin port) to what open
// returns: the interactive app's stdin FIFO, or its terminal.
func forwardStdin(open func() (io.WriteCloser, error)) error {
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
		w, err := open()
		if err != nil {
			return
		}
		io.Copy(w, port)
		w.Close()
	}()
	return nil
}

// startTerminal makes the interactive app's terminal: a pseudo-terminal
// whose other end systemd opens for the app through the contract.TTYPath
// link. Its output is copied to the stdout port, counted like the apps'
// other output, so none of it is lost at exit: a virtio console, which
// QEMU drops output of when the host is slow, is not used. The forwarder
// keeps the app's end open too, so the terminal is never "closed" while
// the app starts and ends: its last output waits to be read.
func startTerminal(stdout *syncio.Writer, wg *sync.WaitGroup) (*os.File, error) {
	master, tty, err := openPTY(agentproto.Size{})
	if err != nil {
		return nil, fmt.Errorf("allocate the app's terminal: %w", err)
	}
	os.Remove(contract.TTYPath)
	if err := os.Symlink(tty.Name(), contract.TTYPath); err != nil {
		master.Close()
		tty.Close()
		return nil, fmt.Errorf("link the app's terminal: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer tty.Close()
		copyStream(master, stdout, nil)
	}()
	return master, nil
}

// nopWriteCloser: the terminal stays open when the host's stdin ends (a
// terminal has no end of input; the user types ^D).
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

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

// copyStream copies the FIFO (or terminal) f to the host port at once
// (chunks as they come, so prompts without a newline show up) and, line by
// line, to the journal j (if not nil). Once a read deadline wakes it
// (shutdown), it takes what is left in f without waiting and returns.
func copyStream(f *os.File, port io.Writer, j *journalWriter) {
	if j != nil {
		defer j.Flush()
	}
	buf := make([]byte, 32*1024)
	emit := func(p []byte) {
		port.Write(p)
		if j != nil {
			j.Write(p)
		}
	}
	for {
		n, err := f.Read(buf)
		if n > 0 {
			emit(buf[:n])
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		} else if err != nil {
			return
		}
	}
	// The FIFO is open read-write here, so a read never sees EOF: read
	// without waiting until it is empty.
	f.SetReadDeadline(time.Time{})
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true
		}); err != nil || rerr != nil || n <= 0 {
			return
		}
		emit(buf[:n])
	}
}

// journalStdout is journald's socket for standard-output streams, the one
// systemd itself connects services' output to (StandardOutput=journal).
const journalStdout = journaldRunDir + "/stdout"

// journalWriter passes an app's stream to journald over a stream
// connection: journald splits it into lines and stores each as an entry of
// the app (SYSLOG_IDENTIFIER) at the stream's priority. A stream socket
// holds the writer back while journald is slow, where datagrams, one per
// line, were dropped under load. It connects on first use; if journald
// cannot be reached, the journal misses the stream but the host still gets
// it.
type journalWriter struct {
	app      string
	priority journal.Priority
	conn     net.Conn
	// dialed: the connection was tried once (it is not retried).
	dialed bool
}

func (j *journalWriter) Write(p []byte) {
	if !j.dialed {
		j.conn, j.dialed = dialJournalStream(j.app, j.priority), true
	}
	if j.conn == nil {
		return
	}
	if _, err := j.conn.Write(p); err != nil {
		fmt.Fprintf(os.Stderr, "stage1-io: journal of %s: %v\n", j.app, err)
		j.conn.Close()
		j.conn = nil
	}
}

// Flush ends the stream and waits, at most contract.JournalSyncTimeout,
// for journald to have read all of it: journald closes its end once it has
// read the end of the stream and stored what came before (a last line
// without a newline included). Its Synchronize call (SyncJournal) does not
// cover what still waits in stream sockets.
func (j *journalWriter) Flush() {
	if j.conn == nil {
		return
	}
	defer func() {
		j.conn.Close()
		j.conn = nil
	}()
	uc, ok := j.conn.(*net.UnixConn)
	if !ok || uc.CloseWrite() != nil {
		return
	}
	uc.SetReadDeadline(time.Now().Add(contract.JournalSyncTimeout))
	if _, err := io.Copy(io.Discard, uc); err != nil {
		fmt.Fprintf(os.Stderr, "stage1-io: journal of %s: %v\n", j.app, err)
	}
}

// dialJournalStream connects to journald's stdout socket and sends the
// stream's header: identifier, unit (none), priority, no level prefix, no
// forwarding to syslog, kmsg or the console. nil if it cannot.
func dialJournalStream(app string, pri journal.Priority) net.Conn {
	c, err := net.Dial("unix", journalStdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1-io: journal of %s: %v\n", app, err)
		return nil
	}
	if _, err := fmt.Fprintf(c, "%s\n\n%d\n0\n0\n0\n0\n", app, pri); err != nil {
		fmt.Fprintf(os.Stderr, "stage1-io: journal of %s: %v\n", app, err)
		c.Close()
		return nil
	}
	return c
}
