package agentproto

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Process is a command a Handler started, as the server drives it.
type Process interface {
	// Stdin is the command's input; Close delivers EOF (with a TTY it
	// may do nothing).
	Stdin() io.WriteCloser
	// Stdout and Stderr are read until a read fails (EOF, or anything
	// else): they must end once the command has ended. Stderr is nil with
	// a TTY.
	Stdout() io.Reader
	Stderr() io.Reader
	// Resize changes the terminal's size (TTY only).
	Resize(Size) error
	// Wait returns the exit status once the command has ended: its exit
	// code, or 128+N if signal N killed it.
	Wait() (int, error)
	// Hangup tells a still running command that its client is gone.
	Hangup()
}

// Handler carries out requests in the guest.
type Handler interface {
	// Exec starts a validated request's command. An error refuses the
	// request with its message; a *RemoteError also gives the status.
	Exec(req *ExecRequest) (Process, error)
	// Stop starts powering the VM off.
	Stop() error
}

// ServeConn serves one request on c and closes c.
func ServeConn(c io.ReadWriteCloser, h Handler) {
	defer c.Close()
	br := bufio.NewReader(c)
	var req Request
	if err := decodeLine(br, "the client", &req); err != nil {
		if !errors.Is(err, io.EOF) {
			writeLine(c, Reply{Version: Version, Error: err.Error()})
		}
		return
	}
	switch req.Op {
	case OpStop:
		reply := Reply{Version: Version}
		if err := h.Stop(); err != nil {
			reply.Error = "stop: " + err.Error()
		}
		writeLine(c, reply)
	case OpExec:
		serveExec(c, br, &req, h)
	default:
		writeLine(c, Reply{Version: Version, Error: fmt.Sprintf("unknown op %q", req.Op)})
	}
}

func serveExec(c io.ReadWriteCloser, br *bufio.Reader, req *Request, h Handler) {
	refuse := func(err error) {
		r := Reply{Version: Version, Error: err.Error()}
		var re *RemoteError
		if errors.As(err, &re) {
			r.Status = re.Status
		}
		writeLine(c, r)
	}
	if req.Exec == nil {
		refuse(errors.New("exec: request without exec parameters"))
		return
	}
	if err := req.Exec.Validate(); err != nil {
		refuse(err)
		return
	}
	p, err := h.Exec(req.Exec)
	if err != nil {
		refuse(err)
		return
	}
	if err := writeLine(c, Reply{Version: Version}); err != nil {
		p.Hangup()
		p.Wait()
		return
	}
	relay(c, br, p)
}

// relay joins a started process to the client's stream: the client's
// frames go to the process, its output and then its exit status back.
func relay(c io.Writer, br *bufio.Reader, p Process) {
	fw := &frameWriter{w: c}
	var finished atomic.Bool
	go func() {
		err := pumpInput(br, p)
		if !finished.Load() {
			// The client is gone (or spoke nonsense) while the
			// command runs.
			if !errors.Is(err, io.EOF) {
				fw.write(FrameError, []byte(err.Error()))
			}
			p.Hangup()
		}
	}()
	var wg sync.WaitGroup
	for _, o := range []struct {
		r io.Reader
		t FrameType
	}{{p.Stdout(), FrameStdout}, {p.Stderr(), FrameStderr}} {
		if o.r == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(stream{fw, o.t}, o.r)
		}()
	}
	wg.Wait()
	status, err := p.Wait()
	finished.Store(true)
	if err != nil {
		fw.write(FrameError, []byte(err.Error()))
		return
	}
	fw.write(FrameExit, ExitPayload(status))
}

// pumpInput applies the client's frames to p until the stream ends; it
// always returns the error that ended it (io.EOF for a clean end).
func pumpInput(br *bufio.Reader, p Process) error {
	stdin := p.Stdin()
	stdinOpen := true
	for {
		f, err := ReadFrame(br)
		if err != nil {
			return err
		}
		switch f.Type {
		case FrameStdin:
			if stdinOpen {
				// A command that closed its stdin makes writes
				// fail; what follows is dropped, as a pipe would.
				if _, err := stdin.Write(f.Payload); err != nil {
					stdinOpen = false
				}
			}
		case FrameStdinEOF:
			if stdinOpen {
				stdin.Close()
				stdinOpen = false
			}
		case FrameResize:
			p.Resize(f.Size())
		default:
			return fmt.Errorf("%w: unexpected %v from the client", ErrProtocol, f.Type)
		}
	}
}
