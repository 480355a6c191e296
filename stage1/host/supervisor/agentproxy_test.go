package supervisor

import (
	"bufio"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/stage1-kvm/stage1-kvm/stage1/agentproto"
)

// A guest agent that accepts streams but never answers: the client's
// connection is closed once the reply deadline passes, and an agent that
// does answer is not cut off afterwards, however slow its output.
func TestAgentProxyBoundsSilentAgent(t *testing.T) {
	p, err := newAgentProxy(filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	p.replyTimeout = 300 * time.Millisecond
	host, guest := net.Pipe()
	srv, err := yamux.Server(guest, agentproto.SessionConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		silent := true
		for {
			st, err := srv.Accept()
			if err != nil {
				return
			}
			if silent {
				silent = false // the first stream gets no answer at all
				continue
			}
			go func() {
				bufio.NewReader(st).ReadString('\n')
				st.Write([]byte("first\n"))
				time.Sleep(600 * time.Millisecond) // longer than the reply bound
				st.Write([]byte("second\n"))
				st.Close()
			}()
		}
	}()
	if err := p.attach(host); err != nil {
		t.Fatal(err)
	}
	go p.serve(time.Second)

	start := time.Now()
	c, err := net.Dial("unix", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("request\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("silent agent: read %q, %v; want EOF", b, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the client waited %v for a silent agent", d)
	}
	c.Close()

	c, err = net.Dial("unix", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("request\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || string(b) != "first\nsecond\n" {
		t.Errorf("answering agent: read %q, %v; want both lines", b, err)
	}
}
