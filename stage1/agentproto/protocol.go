// Package agent is the protocol between the host (enter, stop) and the guest
// agent, which runs commands in the pod's apps. Every request is one byte
// stream (one connection to <pod>/agent.sock, which the run entry point
// proxies to one yamux stream to the agent); docs/agent-protocol.md is the
// specification.
//
// On a stream the client writes one request line (JSON), the agent answers
// with one reply line (JSON), and for exec both sides then exchange frames:
// a type byte, a big-endian uint32 payload length, the payload.
package agentproto

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Version is the protocol version this package speaks. A peer speaking
// another version is refused with a clear error, by either side.
const Version = 1

// Ops.
const (
	OpExec = "exec"
	OpStop = "stop"
)

// MaxLine bounds a request or reply line; MaxPayload bounds a frame's payload.
const (
	MaxLine    = 1 << 20
	MaxPayload = 1 << 20
)

// ErrVersion is wrapped by the error for a peer speaking another version.
var ErrVersion = errors.New("agent protocol version mismatch")

// ErrProtocol is wrapped by every error about malformed data from the peer.
var ErrProtocol = errors.New("agent protocol error")

// Size is a terminal size in characters.
type Size struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// ExecRequest asks the agent to run Argv in App, as root, chrooted into the
// app's root file system, with the app's environment.
type ExecRequest struct {
	App  string   `json:"app"`
	Argv []string `json:"argv"`
	// TTY runs the command on a new pseudo-terminal (its controlling
	// terminal) of size Size, with TERM set to Term if not empty. Without
	// TTY the command gets three pipes.
	TTY  bool   `json:"tty,omitempty"`
	Size Size   `json:"size"`
	Term string `json:"term,omitempty"`
}

// Validate checks what the agent relies on.
func (r *ExecRequest) Validate() error {
	if r.App == "" {
		return errors.New("exec: no app given")
	}
	if len(r.Argv) == 0 || r.Argv[0] == "" {
		return errors.New("exec: no command given")
	}
	for _, a := range append([]string{r.App, r.Term}, r.Argv...) {
		if bytes.IndexByte([]byte(a), 0) >= 0 {
			return errors.New("exec: NUL byte in the request")
		}
	}
	if r.TTY && (r.Size.Rows == 0 || r.Size.Cols == 0) {
		return fmt.Errorf("exec: invalid terminal size %dx%d", r.Size.Rows, r.Size.Cols)
	}
	return nil
}

// Request is the first line a client sends on a stream.
type Request struct {
	Version int          `json:"version"`
	Op      string       `json:"op"`
	Exec    *ExecRequest `json:"exec,omitempty"`
}

// Reply is the agent's first line. Error set means the request was refused
// (or, for exec, the command could not be started) and the stream ends;
// Status is then the exit status the client should use (0: unspecified).
type Reply struct {
	Version int    `json:"version"`
	Error   string `json:"error,omitempty"`
	Status  int    `json:"status,omitempty"`
}

// RemoteError is an error the agent reported: a refused request, a command
// that could not be started, or a failure while running it.
type RemoteError struct {
	Msg    string
	Status int // suggested exit status, 0 if none
}

// Error is the agent's message with control characters escaped: it comes
// from the guest and ends up on the host user's terminal.
func (e *RemoteError) Error() string { return printable(e.Msg) }

// printable escapes every control character of s (terminal escape
// sequences included) as Go would quote it.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// writeLine writes v as one JSON line.
func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readLine reads one line. A line longer than MaxLine, or cut short by
// EOF, is a protocol error; EOF before any byte is io.EOF.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLine {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, MaxLine)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("%w: truncated line", ErrProtocol)
		}
		return nil, err
	}
	return line, nil
}

// decodeLine reads one line of the given protocol version and decodes it
// into v. The version is checked first, so a peer of another version is
// refused with a clear message whatever the rest of its line means.
func decodeLine(r *bufio.Reader, who string, v any) error {
	line, err := readLine(r)
	if err != nil {
		return err
	}
	if err := checkVersion(line, who); err != nil {
		return err
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return nil
}

type versionOnly struct {
	Version int `json:"version"`
}

func checkVersion(line []byte, who string) error {
	var v versionOnly
	if err := json.Unmarshal(line, &v); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if v.Version != Version {
		return fmt.Errorf("%w: %s speaks version %d, this side version %d", ErrVersion, who, v.Version, Version)
	}
	return nil
}
