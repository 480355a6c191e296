package agentproto

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := []Frame{
		{FrameStdin, []byte("hello")},
		{FrameStdinEOF, []byte{}},
		{FrameResize, ResizePayload(Size{Rows: 50, Cols: 132})},
		{FrameStdout, bytes.Repeat([]byte{0, 0xff, '\n'}, 1000)},
		{FrameStderr, []byte{}},
		{FrameExit, ExitPayload(137)},
		{FrameError, []byte("no app named \"x\" in this pod")},
		{FrameStdout, make([]byte, MaxPayload)},
	}
	var buf bytes.Buffer
	for _, f := range frames {
		if err := WriteFrame(&buf, f.Type, f.Payload); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range frames {
		got, err := ReadFrame(&buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("frame %d: got %v (%d bytes), want %v (%d bytes)", i, got.Type, len(got.Payload), want.Type, len(want.Payload))
		}
	}
	if _, err := ReadFrame(&buf); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	r, _ := ReadFrame(bytes.NewReader([]byte{'w', 0, 0, 0, 4, 0, 24, 0, 80}))
	if r.Size() != (Size{24, 80}) {
		t.Errorf("size %+v", r.Size())
	}
	x, _ := ReadFrame(bytes.NewReader(append([]byte{'x', 0, 0, 0, 4}, ExitPayload(255)...)))
	if x.Status() != 255 {
		t.Errorf("status %d", x.Status())
	}
	if err := WriteFrame(io.Discard, FrameStdout, make([]byte, MaxPayload+1)); err == nil {
		t.Error("oversized payload written")
	}
}

func TestReadFrameRejects(t *testing.T) {
	for name, data := range map[string][]byte{
		"unknown type":     {'?', 0, 0, 0, 0},
		"oversized":        {'o', 0x7f, 0, 0, 0},
		"short header":     {'o', 0, 0},
		"short payload":    {'o', 0, 0, 0, 5, 'a', 'b'},
		"resize too short": {'w', 0, 0, 0, 2, 0, 1},
		"exit too long":    {'x', 0, 0, 0, 5, 0, 0, 0, 0, 1},
		"eof with payload": {'c', 0, 0, 0, 1, 'x'},
	} {
		if _, err := ReadFrame(bytes.NewReader(data)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want a protocol error", name, err)
		}
	}
}

// A frame whose fixed-size payload has the wrong length is refused before
// its payload is allocated: a peer announcing a large one costs nothing.
func TestReadFrameChecksLengthFirst(t *testing.T) {
	for _, typ := range []FrameType{FrameStdinEOF, FrameResize, FrameExit} {
		hdr := []byte{byte(typ), 0, 0x10, 0, 0} // MaxPayload announced, nothing sent
		var err error
		if n := allocated(func() { _, err = ReadFrame(bytes.NewReader(hdr)) }); n > 64<<10 {
			t.Errorf("%v: %d bytes allocated", typ, n)
		}
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "want") {
			t.Errorf("%v: %v, want a length error", typ, err)
		}
	}
}

// Request and reply lines are bounded by MaxLine, newline included.
func TestReadLineBound(t *testing.T) {
	fits := append(bytes.Repeat([]byte("a"), MaxLine-1), '\n')
	if line, err := readLine(bufio.NewReader(bytes.NewReader(fits))); err != nil || len(line) != MaxLine {
		t.Errorf("a line of MaxLine bytes: %d bytes, %v", len(line), err)
	}
	long := append(bytes.Repeat([]byte("a"), MaxLine), '\n')
	if _, err := readLine(bufio.NewReader(bytes.NewReader(long))); !errors.Is(err, ErrProtocol) {
		t.Errorf("a line of MaxLine+1 bytes: %v, want a protocol error", err)
	}
	// Without a newline, reading stops at the bound, not at the end.
	endless := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("{"), 4*MaxLine)), strings.NewReader("\n"))
	if _, err := readLine(bufio.NewReader(endless)); !errors.Is(err, ErrProtocol) {
		t.Errorf("an endless line: %v, want a protocol error", err)
	}
	// Both sides: a guest's endless reply, a host's endless request.
	conn := &fuzzConn{r: bytes.NewReader(long)}
	if err := Stop(conn); !errors.Is(err, ErrProtocol) {
		t.Errorf("client, endless reply: %v, want a protocol error", err)
	}
	h := &serveHandler{t: t}
	conn = &fuzzConn{r: bytes.NewReader(long)}
	ServeConn(conn, h)
	var r Reply
	if err := json.Unmarshal(conn.written(), &r); err != nil || !strings.Contains(r.Error, "longer than") || h.stops+len(h.execs) != 0 {
		t.Errorf("server, endless request: reply %q", conn.written())
	}
}

func TestStreamSplitsLargeWrites(t *testing.T) {
	var buf bytes.Buffer
	data := bytes.Repeat([]byte("abcdefgh"), MaxPayload/4+3)
	n, err := stream{&frameWriter{w: &buf}, FrameStdout}.Write(data)
	if err != nil || n != len(data) {
		t.Fatalf("wrote %d, %v", n, err)
	}
	var got []byte
	frames := 0
	for {
		f, err := ReadFrame(&buf)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		frames++
		got = append(got, f.Payload...)
	}
	if frames != 3 || !bytes.Equal(got, data) {
		t.Errorf("%d frames, %d bytes back of %d", frames, len(got), len(data))
	}
}

func TestExecRequestValidate(t *testing.T) {
	ok := ExecRequest{App: "a", Argv: []string{"/bin/sh"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]ExecRequest{
		"no app":       {Argv: []string{"ls"}},
		"no argv":      {App: "a"},
		"empty argv0":  {App: "a", Argv: []string{""}},
		"nul":          {App: "a", Argv: []string{"ls", "a\x00b"}},
		"tty no size":  {App: "a", Argv: []string{"sh"}, TTY: true},
		"tty zero col": {App: "a", Argv: []string{"sh"}, TTY: true, Size: Size{24, 0}},
	} {
		if err := r.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// fakeProcess runs argv[0] as one of a few behaviours, on pipes.
type fakeProcess struct {
	req      *ExecRequest
	stdinR   *io.PipeReader
	stdinW   *io.PipeWriter
	outR     *io.PipeReader
	outW     *io.PipeWriter
	errR     *io.PipeReader
	errW     *io.PipeWriter
	done     chan struct{}
	status   int
	resized  chan Size
	hungUp   chan struct{}
	hangOnce sync.Once
}

func (p *fakeProcess) Stdin() io.WriteCloser { return p.stdinW }
func (p *fakeProcess) Stdout() io.Reader     { return p.outR }
func (p *fakeProcess) Stderr() io.Reader {
	if p.req.TTY {
		return nil
	}
	return p.errR
}
func (p *fakeProcess) Resize(s Size) error { p.resized <- s; return nil }
func (p *fakeProcess) Wait() (int, error) {
	<-p.done
	if p.status < 0 {
		return 0, errors.New("wait failed")
	}
	return p.status, nil
}
func (p *fakeProcess) Hangup() { p.hangOnce.Do(func() { close(p.hungUp) }) }

func (p *fakeProcess) run() {
	defer close(p.done)
	defer p.outW.Close()
	defer p.errW.Close()
	switch p.req.Argv[0] {
	case "cat": // stdin to stdout, then status 0
		io.Copy(p.outW, p.stdinR)
	case "both": // one line on each stream, status from argv[1]
		fmt.Fprintln(p.outW, "to stdout")
		fmt.Fprintln(p.errW, "to stderr")
		fmt.Sscan(p.req.Argv[1], &p.status)
	case "winch": // reports two resizes
		for range 2 {
			s := <-p.resized
			fmt.Fprintf(p.outW, "%dx%d\n", s.Rows, s.Cols)
		}
	case "block": // runs until hung up
		<-p.hungUp
		p.status = 129
	case "waitfail":
		p.status = -1
	}
}

type fakeHandler struct {
	mu      sync.Mutex
	procs   []*fakeProcess
	stops   int
	stopErr error
}

func (h *fakeHandler) Exec(req *ExecRequest) (Process, error) {
	if req.App != "app" {
		return nil, &RemoteError{Msg: fmt.Sprintf("no app named %q in this pod", req.App)}
	}
	if req.Argv[0] == "missing" {
		return nil, &RemoteError{Msg: "exec: missing: not found", Status: 127}
	}
	p := &fakeProcess{req: req, done: make(chan struct{}), resized: make(chan Size, 4), hungUp: make(chan struct{})}
	p.stdinR, p.stdinW = io.Pipe()
	p.outR, p.outW = io.Pipe()
	p.errR, p.errW = io.Pipe()
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	go p.run()
	return p, nil
}

func (h *fakeHandler) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stops++
	return h.stopErr
}

// pair returns a yamux client session whose streams ServeConn(h) serves,
// over net.Pipe, as the host proxy and the guest agent do over the virtio
// port.
func pair(t *testing.T, h Handler) *yamux.Session {
	t.Helper()
	a, b := net.Pipe()
	cfg := SessionConfig()
	srv, err := yamux.Server(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := yamux.Client(a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			go ServeConn(c, h)
		}
	}()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli
}

func open(t *testing.T, s *yamux.Session) net.Conn {
	t.Helper()
	c, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestExecStreamsAndStatus(t *testing.T) {
	s := pair(t, &fakeHandler{})
	var out, errb bytes.Buffer
	code, err := Exec(open(t, s), ExecRequest{App: "app", Argv: []string{"both", "3"}}, nil, &out, &errb, nil)
	if err != nil || code != 3 {
		t.Fatalf("code %d, err %v", code, err)
	}
	if out.String() != "to stdout\n" || errb.String() != "to stderr\n" {
		t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
	}
}

func TestExecStdinAndEOF(t *testing.T) {
	s := pair(t, &fakeHandler{})
	input := strings.Repeat("some input line\n", 50000) // several frames, beyond yamux's window
	var out bytes.Buffer
	code, err := Exec(open(t, s), ExecRequest{App: "app", Argv: []string{"cat"}}, strings.NewReader(input), &out, nil, nil)
	if err != nil || code != 0 {
		t.Fatalf("code %d, err %v", code, err)
	}
	if out.String() != input {
		t.Errorf("cat gave %d bytes back of %d", out.Len(), len(input))
	}
	// Several requests share the session, concurrently.
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var o bytes.Buffer
			in := fmt.Sprintf("stream %d\n", i)
			if _, err := Exec(open(t, s), ExecRequest{App: "app", Argv: []string{"cat"}}, strings.NewReader(in), &o, nil, nil); err != nil || o.String() != in {
				t.Errorf("stream %d: %q, %v", i, o.String(), err)
			}
		}()
	}
	wg.Wait()
}

func TestExecResize(t *testing.T) {
	s := pair(t, &fakeHandler{})
	resize := make(chan Size, 2)
	resize <- Size{30, 100}
	resize <- Size{40, 120}
	pr, pw := io.Pipe() // stdin that stays open
	defer pw.Close()
	var out bytes.Buffer
	code, err := Exec(open(t, s), ExecRequest{App: "app", Argv: []string{"winch"}, TTY: true, Size: Size{24, 80}}, pr, &out, nil, resize)
	if err != nil || code != 0 {
		t.Fatalf("code %d, err %v", code, err)
	}
	if out.String() != "30x100\n40x120\n" {
		t.Errorf("resizes seen: %q", out.String())
	}
}

func TestExecRefused(t *testing.T) {
	s := pair(t, &fakeHandler{})
	_, err := Exec(open(t, s), ExecRequest{App: "nope", Argv: []string{"ls"}}, nil, nil, nil, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != `no app named "nope" in this pod` || re.Status != 0 {
		t.Errorf("unknown app: %#v", err)
	}
	_, err = Exec(open(t, s), ExecRequest{App: "app", Argv: []string{"missing"}}, nil, nil, nil, nil)
	if !errors.As(err, &re) || re.Status != 127 || !strings.Contains(re.Msg, "not found") {
		t.Errorf("missing command: %#v", err)
	}
	_, err = Exec(open(t, s), ExecRequest{App: "app", Argv: []string{"waitfail"}}, nil, nil, nil, nil)
	if !errors.As(err, &re) || re.Msg != "wait failed" {
		t.Errorf("failure after start: %#v", err)
	}
}

func TestClientGoneHangsUp(t *testing.T) {
	h := &fakeHandler{}
	s := pair(t, h)
	c := open(t, s)
	pr, pw := io.Pipe()
	defer pw.Close()
	res := make(chan struct{})
	go func() {
		// A yamux stream's Close is a half-close: the hung-up
		// command's status may still arrive, or an error.
		Exec(c, ExecRequest{App: "app", Argv: []string{"block"}}, pr, nil, nil, nil)
		close(res)
	}()
	var p *fakeProcess
	for deadline := time.Now().Add(5 * time.Second); p == nil; time.Sleep(time.Millisecond) {
		h.mu.Lock()
		if len(h.procs) == 1 {
			p = h.procs[0]
		}
		h.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the command never started")
		}
	}
	c.Close()
	select {
	case <-p.hungUp:
	case <-time.After(5 * time.Second):
		t.Fatal("a command whose client left was not hung up")
	}
	select {
	case <-res:
	case <-time.After(5 * time.Second):
		t.Error("Exec did not return after its connection closed")
	}
}

func TestStop(t *testing.T) {
	h := &fakeHandler{}
	s := pair(t, h)
	if err := Stop(open(t, s)); err != nil {
		t.Fatal(err)
	}
	h.stopErr = errors.New("systemctl: boom")
	err := Stop(open(t, s))
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "boom") {
		t.Errorf("stop failure: %v", err)
	}
	if h.stops != 2 {
		t.Errorf("%d stops", h.stops)
	}
}

// rawRequest sends one line and returns the agent's reply line.
func rawRequest(t *testing.T, s *yamux.Session, line string) Reply {
	t.Helper()
	c := open(t, s)
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	var r Reply
	if err := decodeLine(bufio.NewReader(c), "agent", &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestServerRefusesBadRequests(t *testing.T) {
	h := &fakeHandler{}
	s := pair(t, h)
	for line, want := range map[string]string{
		`{"version":2,"op":"exec","exec":{"app":"app","argv":["cat"]}}`: "speaks version 2, this side version 1",
		`{"op":"stop"}`:               "speaks version 0",
		`{"version":1,"op":"reboot"}`: `unknown op "reboot"`,
		`{"version":1,"op":"exec"}`:   "without exec parameters",
		`{"version":1,"op":"exec","exec":{"app":"app","argv":[]}}`: "no command",
		`not json`: "agent protocol error",
	} {
		r := rawRequest(t, s, line)
		if r.Version != Version || !strings.Contains(r.Error, want) {
			t.Errorf("%s: reply %+v, want an error with %q", line, r, want)
		}
	}
	if h.stops != 0 || len(h.procs) != 0 {
		t.Error("a refused request was carried out")
	}
}

func TestClientRefusesOtherVersion(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		br := bufio.NewReader(b)
		br.ReadString('\n')
		io.WriteString(b, `{"version":2}`+"\n")
		b.Close()
	}()
	_, err := Exec(a, ExecRequest{App: "app", Argv: []string{"ls"}}, nil, nil, nil, nil)
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "the guest agent speaks version 2") {
		t.Errorf("got %v", err)
	}
}

func TestDialNotRunning(t *testing.T) {
	dir := t.TempDir()
	if _, err := Dial(dir + "/agent.sock"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("missing socket: %v", err)
	}
	l, err := net.Listen("unix", dir+"/agent.sock")
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the socket file stays, nobody listens
	if _, err := Dial(dir + "/agent.sock"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("stale socket: %v", err)
	}
}

// What the guest says reaches the host's terminal without its control
// characters.
func TestRemoteErrorPrintable(t *testing.T) {
	e := &RemoteError{Msg: "exec: \x1b]0;pwned\x07\x1b[2Jx: not found\n\r\x00é"}
	if got, want := e.Error(), `exec: \x1b]0;pwned\a\x1b[2Jx: not found\n\r\x00é`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
