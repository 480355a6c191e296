package agentproto

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/stage1-kvm/stage1-kvm/stage1/unixsock"
)

// ErrNotRunning is returned by Dial when nothing serves the agent socket.
var ErrNotRunning = errors.New("pod is not running")

// agentName is how errors name the other side.
const agentName = "the guest agent"

// Dial connects to the agent socket (contract.AgentSocket in the pod dir).
// A missing socket or a refused connection is ErrNotRunning.
func Dial(socket string) (net.Conn, error) {
	c, err := unixsock.Dial(socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (%s: %v)", ErrNotRunning, socket, unwrapSyscall(err))
		}
		return nil, fmt.Errorf("connect to %s: %w", socket, err)
	}
	return c, nil
}

func unwrapSyscall(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// errNoExit is returned when the stream ends without an exit status.
var errNoExit = errors.New("the connection to the pod ended before the command's exit status (did the pod stop?)")

// request sends req on conn and reads the agent's reply. A refusal is a
// *RemoteError.
func request(conn io.ReadWriter, req Request) (*bufio.Reader, error) {
	if err := writeLine(conn, req); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	br := bufio.NewReader(conn)
	var reply Reply
	if err := decodeLine(br, agentName, &reply); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the pod's agent closed the connection without answering (is the pod still starting or stopping?)")
		}
		return nil, fmt.Errorf("read reply: %w", err)
	}
	if reply.Error != "" {
		return nil, &RemoteError{Msg: reply.Error, Status: reply.Status}
	}
	return br, nil
}

// Stop asks the agent to power the VM off (an orderly stop of every app).
// It returns once the agent has queued the power-off; the run entry point
// exits when the VM is gone.
func Stop(conn io.ReadWriter) error {
	_, err := request(conn, Request{Version: Version, Op: OpStop})
	return err
}

// Exec runs a command in the pod and returns its exit status (128+N for a
// command killed by signal N). stdin is copied to the command until its EOF
// (nil: empty stdin); stdout and stderr receive the command's output (nil:
// discarded; with req.TTY everything arrives on stdout). Sizes received on
// resize (may be nil) resize the command's terminal. An error from the
// agent is a *RemoteError. Exec may return while a goroutine is still
// blocked reading stdin.
func Exec(conn io.ReadWriter, req ExecRequest, stdin io.Reader, stdout, stderr io.Writer, resize <-chan Size) (int, error) {
	if err := req.Validate(); err != nil {
		return 0, err
	}
	br, err := request(conn, Request{Version: Version, Op: OpExec, Exec: &req})
	if err != nil {
		return 0, err
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	fw := &frameWriter{w: conn}
	done := make(chan struct{})
	defer close(done)
	go func() {
		if stdin != nil && !pumpStdin(stdin, stream{fw, FrameStdin}) {
			return
		}
		fw.write(FrameStdinEOF, nil)
	}()
	if resize != nil {
		go forwardResizes(fw, resize, done)
	}
	return readReplies(br, stdout, stderr)
}

// forwardResizes sends each terminal size from resize until it is closed,
// the stream fails or done is closed.
func forwardResizes(fw *frameWriter, resize <-chan Size, done <-chan struct{}) {
	for {
		select {
		case s, ok := <-resize:
			if !ok {
				return
			}
			if fw.write(FrameResize, ResizePayload(s)) != nil {
				return
			}
		case <-done:
			return
		}
	}
}

// readReplies copies the command's output frames to stdout and stderr
// until its exit status or the agent's error.
func readReplies(br io.Reader, stdout, stderr io.Writer) (int, error) {
	for {
		f, err := ReadFrame(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, errNoExit
			}
			return 0, err
		}
		switch f.Type {
		case FrameStdout:
			// A closed stdout (enter ... | head -1) must not stop the
			// command's other output or its exit status.
			stdout.Write(f.Payload)
		case FrameStderr:
			stderr.Write(f.Payload)
		case FrameExit:
			return f.Status(), nil
		case FrameError:
			return 0, &RemoteError{Msg: string(f.Payload)}
		default:
			return 0, fmt.Errorf("%w: unexpected %v from the agent", ErrProtocol, f.Type)
		}
	}
}

// pumpStdin copies stdin to the stream until stdin ends (EOF, or a read
// error, which ends the command's stdin the same way). It returns false if
// the stream failed: the frame loop reports that.
func pumpStdin(stdin io.Reader, w io.Writer) bool {
	buf := make([]byte, 32*1024)
	for {
		n, err := stdin.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false
			}
		}
		if err != nil {
			return true
		}
	}
}
