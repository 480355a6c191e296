package agentproto

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// FrameType is a frame's first byte. The letters make a stream readable in
// a hex dump.
type FrameType byte

// Frames after an exec request was accepted. Client to agent: Stdin,
// StdinEOF, Resize. Agent to client: Stdout, Stderr, then exactly one of
// Exit or Error, which ends the stream.
const (
	FrameStdin    FrameType = 'i' // bytes for the command's stdin
	FrameStdinEOF FrameType = 'c' // no payload: the command's stdin ends
	FrameResize   FrameType = 'w' // 4 bytes: rows, cols (big-endian uint16)
	FrameStdout   FrameType = 'o' // bytes the command wrote to stdout (the terminal, with a TTY)
	FrameStderr   FrameType = 'e' // bytes the command wrote to stderr (never with a TTY)
	FrameExit     FrameType = 'x' // 4 bytes: exit status (big-endian uint32); 128+N if signal N killed it
	FrameError    FrameType = '!' // UTF-8 message: the agent could not go on
)

func (t FrameType) valid() bool {
	switch t {
	case FrameStdin, FrameStdinEOF, FrameResize, FrameStdout, FrameStderr, FrameExit, FrameError:
		return true
	}
	return false
}

func (t FrameType) String() string {
	if t >= ' ' && t <= '~' {
		return fmt.Sprintf("frame %q", rune(t))
	}
	return fmt.Sprintf("frame 0x%02x", byte(t))
}

// Frame is one decoded frame.
type Frame struct {
	Type    FrameType
	Payload []byte
}

const headerLen = 5

// WriteFrame writes one frame. The payload must not exceed MaxPayload.
func WriteFrame(w io.Writer, t FrameType, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("%v: payload of %d bytes exceeds %d", t, len(payload), MaxPayload)
	}
	buf := make([]byte, headerLen+len(payload))
	buf[0] = byte(t)
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[headerLen:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame. io.EOF means the stream ended cleanly between
// frames; a stream cut inside a frame, an unknown type or an oversized
// payload is a protocol error.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return Frame{}, fmt.Errorf("%w: stream ended inside a frame header", ErrProtocol)
		}
		return Frame{}, err
	}
	t := FrameType(h[0])
	if !t.valid() {
		return Frame{}, fmt.Errorf("%w: unknown %v", ErrProtocol, t)
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxPayload {
		return Frame{}, fmt.Errorf("%w: %v with a payload of %d bytes (limit %d)", ErrProtocol, t, n, MaxPayload)
	}
	// Checked before the payload is allocated and read.
	if err := checkLen(t, n); err != nil {
		return Frame{}, err
	}
	f := Frame{Type: t, Payload: make([]byte, n)}
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Frame{}, fmt.Errorf("%w: stream ended inside a %v", ErrProtocol, t)
		}
		return Frame{}, err
	}
	return f, nil
}

// checkLen validates the length of fixed-size payloads.
func checkLen(t FrameType, n uint32) error {
	want := -1
	switch t {
	case FrameStdinEOF:
		want = 0
	case FrameResize, FrameExit:
		want = 4
	}
	if want >= 0 && int64(n) != int64(want) {
		return fmt.Errorf("%w: %v with %d payload bytes, want %d", ErrProtocol, t, n, want)
	}
	return nil
}

// ResizePayload encodes a size for FrameResize.
func ResizePayload(s Size) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b, s.Rows)
	binary.BigEndian.PutUint16(b[2:], s.Cols)
	return b
}

// Size decodes a FrameResize payload.
func (f Frame) Size() Size {
	return Size{Rows: binary.BigEndian.Uint16(f.Payload), Cols: binary.BigEndian.Uint16(f.Payload[2:])}
}

// ExitPayload encodes a status for FrameExit.
func ExitPayload(status int) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(status))
	return b
}

// Status decodes a FrameExit payload.
func (f Frame) Status() int { return int(binary.BigEndian.Uint32(f.Payload)) }

// frameWriter serializes frames written from several goroutines.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (fw *frameWriter) write(t FrameType, p []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return WriteFrame(fw.w, t, p)
}

// stream is an io.Writer sending each write as frames of one type, split
// to respect MaxPayload.
type stream struct {
	fw *frameWriter
	t  FrameType
}

func (s stream) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), MaxPayload)
		if err := s.fw.write(s.t, p[:c]); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}
