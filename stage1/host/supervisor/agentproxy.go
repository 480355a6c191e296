package supervisor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/stage1-kvm/stage1-kvm/stage1/agentproto"
	"github.com/stage1-kvm/stage1-kvm/stage1/unixsock"
)

// agentReplyTimeout bounds how long the guest agent may take to start
// answering a request once its stream is open (the agent answers at once;
// only a broken or hostile guest does not). Past it the client's
// connection is closed, so enter and stop never hang on a silent guest.
const agentReplyTimeout = 30 * time.Second

// errNoAgent is returned to clients when the guest agent never came up.
var errNoAgent = errors.New("the pod's guest agent is not available")

// agentProxy serves the pod's agent socket: every connection a client (enter,
// or run itself for an orderly stop) makes becomes one stream of a yamux
// session over the single agent virtio-serial port.
type agentProxy struct {
	ln   *net.UnixListener
	path string // the socket, removed on close
	// replyTimeout is agentReplyTimeout (shorter in tests).
	replyTimeout time.Duration

	mu    sync.Mutex
	sess  *yamux.Session
	ready chan struct{} // closed once sess is set
	gone  chan struct{} // closed when the VM is gone
	once  sync.Once
}

func newAgentProxy(path string) (*agentProxy, error) {
	os.Remove(path)
	ln, err := unixsock.Listen(path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// Root only: whoever can connect can run commands in the pod.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, err
	}
	return &agentProxy{ln: ln, path: path, replyTimeout: agentReplyTimeout, ready: make(chan struct{}), gone: make(chan struct{})}, nil
}

// attach starts the yamux client over the port connection once the guest
// agent said it holds the port open.
func (p *agentProxy) attach(port net.Conn) error {
	sess, err := yamux.Client(port, agentproto.SessionConfig())
	if err != nil {
		return fmt.Errorf("agent session: %w", err)
	}
	p.mu.Lock()
	p.sess = sess
	p.mu.Unlock()
	close(p.ready)
	return nil
}

// open returns a new stream to the agent, waiting up to wait for the agent
// to come up.
func (p *agentProxy) open(wait time.Duration) (net.Conn, error) {
	select {
	case <-p.ready:
	case <-p.gone:
		return nil, errNoAgent
	case <-time.After(wait):
		return nil, fmt.Errorf("%w within %v", errNoAgent, wait)
	}
	p.mu.Lock()
	sess := p.sess
	p.mu.Unlock()
	return sess.Open()
}

// serve accepts clients until close. Each client waits for the agent as
// long as a boot may take.
func (p *agentProxy) serve(wait time.Duration) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s, err := p.open(wait)
			if err != nil {
				return
			}
			defer s.Close()
			s.SetReadDeadline(time.Now().Add(p.replyTimeout))
			// A yamux stream's Close is a half-close: the client's
			// EOF reaches the agent, which may still answer.
			go func() { io.Copy(s, c); s.Close() }()
			done := make(chan struct{})
			go func() { io.Copy(c, &answered{Conn: s}); close(done) }()
			select {
			case <-done:
			case <-p.gone:
			}
		}()
	}
}

// close stops accepting and ends the session; the VM is gone.
func (p *agentProxy) close() {
	p.once.Do(func() {
		close(p.gone)
		p.ln.Close()
		os.Remove(p.path)
		p.mu.Lock()
		if p.sess != nil {
			p.sess.Close()
		}
		p.mu.Unlock()
	})
}

// answered lifts the reply deadline once the agent has started answering:
// a command's output may then take as long as the command.
type answered struct {
	net.Conn
	once sync.Once
}

func (a *answered) Read(b []byte) (int, error) {
	n, err := a.Conn.Read(b)
	if n > 0 {
		a.once.Do(func() { a.Conn.SetReadDeadline(time.Time{}) })
	}
	return n, err
}
