package agentproto

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// maxAlloc bounds what reading in bytes from a peer may allocate: one
// frame's payload buffer announced but not sent, and a constant factor of
// what was actually sent (lines are appended in chunks, then decoded).
func maxAlloc(in int) uint64 { return 2*MaxPayload + 1<<20 + 64*uint64(in) }

// allocated runs fn and returns how many bytes the process allocated
// meanwhile (fuzz inputs run one at a time in a worker).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// frameSeeds are streams of frames and pieces of frames.
func frameSeeds() [][]byte {
	var ok bytes.Buffer
	WriteFrame(&ok, FrameStdout, []byte("hello\n"))
	WriteFrame(&ok, FrameStderr, nil)
	WriteFrame(&ok, FrameResize, ResizePayload(Size{Rows: 24, Cols: 80}))
	WriteFrame(&ok, FrameStdinEOF, nil)
	WriteFrame(&ok, FrameExit, ExitPayload(3))
	return [][]byte{
		ok.Bytes(),
		{'o', 0xff, 0xff, 0xff, 0xff}, // 4 GiB payload announced
		{'o', 0, 0x10, 0, 1},          // just over MaxPayload
		{'o', 0, 0x10, 0, 0, 'a'},     // MaxPayload announced, 1 byte sent
		{'x', 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff},
		{'w', 0, 0, 0, 3, 1, 2, 3},
		{'?', 0, 0, 0, 0},
		{'!', 0, 0, 0, 2, 'n', 'o'},
		{'o', 0, 0},
	}
}

// FuzzReadFrame: a hostile peer's bytes as frames. ReadFrame must not
// panic or allocate more than the payload limit, and every frame it
// returns must be one the protocol defines, with the payload it carried:
// written again, it gives back exactly the bytes it was read from.
func FuzzReadFrame(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var frames int
		n := allocated(func() {
			for {
				start := len(data) - r.Len()
				fr, err := ReadFrame(r)
				if err != nil {
					if errors.Is(err, io.EOF) && start != len(data) {
						t.Fatalf("io.EOF in the middle of a frame at byte %d of %d", start, len(data))
					}
					if !errors.Is(err, io.EOF) && !errors.Is(err, ErrProtocol) {
						t.Fatalf("error %v is neither io.EOF nor a protocol error", err)
					}
					return
				}
				frames++
				if !fr.Type.valid() || len(fr.Payload) > MaxPayload {
					t.Fatalf("frame %v with %d bytes accepted", fr.Type, len(fr.Payload))
				}
				var again bytes.Buffer
				if err := WriteFrame(&again, fr.Type, fr.Payload); err != nil {
					t.Fatalf("accepted frame cannot be written again: %v", err)
				}
				if read := data[start : len(data)-r.Len()]; !bytes.Equal(again.Bytes(), read) {
					t.Fatalf("frame read from %x writes as %x", read, again.Bytes())
				}
				switch fr.Type {
				case FrameResize:
					fr.Size()
				case FrameExit:
					if fr.Status() < 0 {
						t.Fatalf("negative exit status %d", fr.Status())
					}
				}
			}
		})
		if n > maxAlloc(len(data)) {
			t.Fatalf("%d frames from %d bytes allocated %d bytes", frames, len(data), n)
		}
	})
}

// fuzzConn is a connection whose peer sends in and ignores what it gets.
type fuzzConn struct {
	r  io.Reader
	mu sync.Mutex
	w  bytes.Buffer
}

func (c *fuzzConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(p)
}
func (c *fuzzConn) Close() error { return nil }

// written is what was written to c so far.
func (c *fuzzConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.w.Bytes())
}

// FuzzExec: the host side (enter, stop) reading what a hostile guest agent
// answers. Exec must not panic, allocate beyond the limits or pass on more
// output than it was sent; it ends with the command's status or one of
// the errors it documents.
func FuzzExec(f *testing.F) {
	reply := func(r Reply) []byte { b, _ := json.Marshal(r); return append(b, '\n') }
	for _, s := range frameSeeds() {
		f.Add(append(reply(Reply{Version: Version}), s...), false)
	}
	f.Add(reply(Reply{Version: Version, Error: "no app named \"x\" in this pod", Status: 127}), false)
	f.Add(reply(Reply{Version: 2}), true)
	f.Add([]byte(`{"version":1,"error":""}`), false)
	f.Add([]byte(`{"version":1,"status":-1,"error":"x"}`+"\n"), false)
	f.Add([]byte("\n"), false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, tty bool) {
		conn := &fuzzConn{r: bytes.NewReader(data)}
		var stdout, stderr bytes.Buffer
		var status int
		var err error
		n := allocated(func() {
			req := ExecRequest{App: "app", Argv: []string{"/bin/sh"}, TTY: tty, Size: Size{Rows: 24, Cols: 80}}
			status, err = Exec(conn, req, nil, &stdout, &stderr, nil)
		})
		if n > maxAlloc(len(data)) {
			t.Fatalf("%d bytes from the agent allocated %d bytes", len(data), n)
		}
		if out := stdout.Len() + stderr.Len(); out > len(data) {
			t.Fatalf("%d bytes of output from %d bytes", out, len(data))
		}
		var remote *RemoteError
		switch {
		case err == nil:
			if status < 0 {
				t.Fatalf("status %d", status)
			}
		case errors.As(err, &remote):
			if status != 0 {
				t.Fatalf("status %d with %v", status, err)
			}
		case errors.Is(err, ErrProtocol), errors.Is(err, ErrVersion), errors.Is(err, errNoExit),
			strings.Contains(err.Error(), "without answering"):
		default:
			t.Fatalf("undocumented error %v", err)
		}
		// What the client sent is one valid request line.
		sent, err := bufio.NewReader(bytes.NewReader(conn.written())).ReadBytes('\n')
		var req Request
		if err != nil || json.Unmarshal(sent, &req) != nil || req.Version != Version || req.Op != OpExec || req.Exec == nil {
			t.Fatalf("client sent %q", sent)
		}
	})
}

// serveProcess is a command that writes its output and waits until its
// stdin ends or its client is gone.
type serveProcess struct {
	tty      bool
	stdin    stdinSink
	end      chan struct{}
	once     sync.Once
	waitFail bool
}

type stdinSink struct{ p *serveProcess }

func (s stdinSink) Write(b []byte) (int, error) { return len(b), nil }
func (s stdinSink) Close() error                { s.p.finish(); return nil }

func (p *serveProcess) finish()               { p.once.Do(func() { close(p.end) }) }
func (p *serveProcess) Stdin() io.WriteCloser { return p.stdin }
func (p *serveProcess) Stdout() io.Reader     { return strings.NewReader(serveStdout) }
func (p *serveProcess) Stderr() io.Reader {
	if p.tty {
		return nil
	}
	return strings.NewReader(serveStderr)
}
func (p *serveProcess) Resize(Size) error { return nil }
func (p *serveProcess) Hangup()           { p.finish() }
func (p *serveProcess) Wait() (int, error) {
	<-p.end
	if p.waitFail {
		return 0, errors.New("wait failed")
	}
	return serveStatus, nil
}

const (
	serveStdout = "to stdout"
	serveStderr = "to stderr"
	serveStatus = 7
)

// serveHandler checks that it is only asked what the protocol allows.
type serveHandler struct {
	t     *testing.T
	execs []*ExecRequest
	stops int
}

func (h *serveHandler) Exec(req *ExecRequest) (Process, error) {
	if err := req.Validate(); err != nil {
		h.t.Fatalf("Exec called with an invalid request %+v: %v", req, err)
	}
	h.execs = append(h.execs, req)
	switch req.Argv[0] {
	case "missing":
		return nil, &RemoteError{Msg: "missing: not found", Status: 127}
	case "broken":
		return nil, errors.New("cannot start")
	}
	p := &serveProcess{tty: req.TTY, end: make(chan struct{}), waitFail: req.Argv[0] == "waitfail"}
	p.stdin = stdinSink{p}
	return p, nil
}

func (h *serveHandler) Stop() error { h.stops++; return nil }

// FuzzServeConn: the guest side reading what the host sends on a stream.
// ServeConn must not panic; the handler gets only validated requests of
// the protocol's version; and what the agent writes back is one reply
// line, then for a started command its output, whole, and its exit.
func FuzzServeConn(f *testing.F) {
	line := func(r Request) []byte { b, _ := json.Marshal(r); return append(b, '\n') }
	exec := func(argv0 string, tty bool) []byte {
		return line(Request{Version: Version, Op: OpExec, Exec: &ExecRequest{App: "app", Argv: []string{argv0}, TTY: tty, Size: Size{Rows: 24, Cols: 80}}})
	}
	var in bytes.Buffer
	WriteFrame(&in, FrameStdin, []byte("input"))
	WriteFrame(&in, FrameResize, ResizePayload(Size{Rows: 50, Cols: 132}))
	WriteFrame(&in, FrameStdinEOF, nil)
	for _, s := range [][]byte{
		append(exec("cat", false), in.Bytes()...),
		append(exec("cat", true), in.Bytes()...),
		append(exec("cat", false), 'o', 0, 0, 0, 1, 'x'), // a frame only the agent sends
		append(exec("cat", false), 'i', 0xff, 0xff, 0xff, 0xff),
		exec("missing", false),
		exec("broken", false),
		append(exec("waitfail", false), in.Bytes()...),
		line(Request{Version: Version, Op: OpStop}),
		line(Request{Version: 2, Op: OpStop}),
		[]byte(`{"version":1,"op":"exec","exec":{"app":"app","argv":["a\u0000b"]}}` + "\n"),
		[]byte(`{"version":1,"op":"exec","exec":{"app":"app","argv":["sh"],"tty":true}}` + "\n"),
		[]byte(`{"version":1,"op":"exec"}` + "\n"),
		[]byte(`{"version":1,"op":"exec","exec":null}` + "\n"),
		[]byte(`{"version":1,"op":"reboot"}`),
		[]byte("\n"),
		{},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := &serveHandler{t: t}
		conn := &fuzzConn{r: bytes.NewReader(data)}
		ServeConn(conn, h)
		if len(h.execs)+h.stops > 1 {
			t.Fatalf("one stream carried out %d requests", len(h.execs)+h.stops)
		}
		out := bufio.NewReader(bytes.NewReader(conn.written()))
		first, err := out.ReadBytes('\n')
		if err == io.EOF && len(first) == 0 {
			if len(h.execs)+h.stops > 0 {
				t.Fatal("a request was carried out without a reply")
			}
			return // nothing read, nothing said
		}
		var reply Reply
		if err != nil || json.Unmarshal(first, &reply) != nil || reply.Version != Version {
			t.Fatalf("reply line %q (%v)", first, err)
		}
		started := len(h.execs) == 1 && h.execs[0].Argv[0] != "missing" && h.execs[0].Argv[0] != "broken"
		if (reply.Error == "") != (started || h.stops == 1) {
			t.Fatalf("reply %+v after %d execs and %d stops", reply, len(h.execs), h.stops)
		}
		if !started {
			if rest, _ := io.ReadAll(out); len(rest) > 0 {
				t.Fatalf("%q after the reply %+v", rest, reply)
			}
			return
		}
		checkServed(t, out, h.execs[0])
	})
}

// checkServed reads the frames the agent sent for a started command.
func checkServed(t *testing.T, out io.Reader, req *ExecRequest) {
	t.Helper()
	var stdout, stderr []byte
	exits, errs := 0, 0
	for {
		fr, err := ReadFrame(out)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("the agent wrote a bad frame: %v", err)
		}
		switch fr.Type {
		case FrameStdout:
			stdout = append(stdout, fr.Payload...)
		case FrameStderr:
			stderr = append(stderr, fr.Payload...)
		case FrameExit:
			exits++
			if fr.Status() != serveStatus {
				t.Fatalf("exit status %d, want %d", fr.Status(), serveStatus)
			}
		case FrameError:
			errs++
		default:
			t.Fatalf("the agent sent a client's %v", fr.Type)
		}
	}
	wantErr := ""
	if !req.TTY {
		wantErr = serveStderr
	}
	if string(stdout) != serveStdout || string(stderr) != wantErr {
		t.Fatalf("output %q and %q, want %q and %q", stdout, stderr, serveStdout, wantErr)
	}
	// Exactly one exit status, or the error that replaces it; a client's
	// protocol error may come as an error frame before either.
	if req.Argv[0] == "waitfail" {
		if exits != 0 || errs == 0 {
			t.Fatalf("%d exits and %d errors after a failed wait", exits, errs)
		}
	} else if exits != 1 || errs > 1 {
		t.Fatalf("%d exits and %d errors", exits, errs)
	}
}
