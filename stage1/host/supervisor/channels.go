package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// channels are the host ends of the VM's virtio-serial ports while the pod
// runs: QEMU connects once to each listening socket, and the goroutines
// started here move the bytes. wait returns once every copy towards the
// host has ended (QEMU closes its ends when it exits).
type channels struct {
	conns map[string]chan net.Conn
	pumps sync.WaitGroup
	// outs are the copies copyOut started, by port.
	outs map[string]*outCopy
}

// outCopy is one port's copy towards run's output: how much it has passed
// on, and the connection once QEMU has made it.
type outCopy struct {
	w      io.Writer
	copied atomic.Int64
	conn   atomic.Pointer[net.Conn]
}

func (o *outCopy) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	o.copied.Add(int64(n))
	return n, err
}

// acceptChannels accepts QEMU's connection on each listener in the
// background; a port's channel yields that connection, or is closed when
// the listener is closed first. pre holds connections already accepted,
// by port.
func acceptChannels(listeners map[string]*net.UnixListener, pre map[string]net.Conn) *channels {
	c := &channels{conns: map[string]chan net.Conn{}, outs: map[string]*outCopy{}}
	for name, ln := range listeners {
		ch := make(chan net.Conn, 1)
		c.conns[name] = ch
		if conn := pre[name]; conn != nil {
			ch <- conn
			continue
		}
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				close(ch)
				return
			}
			ch <- conn
		}()
	}
	return c
}

// conn is port's connection channel (nil, which blocks forever, for a
// port the VM does not have).
func (c *channels) conn(port string) chan net.Conn { return c.conns[port] }

// copyOut copies what the guest writes on port to w, counting it.
func (c *channels) copyOut(port string, w io.Writer) {
	o := &outCopy{w: w}
	c.outs[port] = o
	c.pumps.Add(1)
	go func() {
		defer c.pumps.Done()
		if conn, ok := <-c.conns[port]; ok {
			o.conn.Store(&conn)
			io.Copy(o, conn)
			conn.Close()
		}
	}()
}

// copied is how many bytes the copy of port has passed on (0 for a port
// without one).
func (c *channels) copied(port string) int64 {
	if o := c.outs[port]; o != nil {
		return o.copied.Load()
	}
	return 0
}

// ackOutput waits until the stdout and stderr copies have passed on the
// byte counts of the guest's output-end event, then acknowledges on the
// stdout port (contract.OutputAck); the guest holds its power-off until
// then. It gives up when done is closed or after timeout, leaving the
// shortfall for outputLoss to report.
func (c *channels) ackOutput(e contract.Event, done <-chan struct{}, timeout time.Duration) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		o := c.outs[contract.StdoutPort]
		if o != nil && o.conn.Load() != nil &&
			o.copied.Load() >= e.StdoutBytes && c.copied(contract.StderrPort) >= e.StderrBytes {
			(*o.conn.Load()).Write([]byte(contract.OutputAck))
			return
		}
		select {
		case <-tick.C:
		case <-done:
			return
		case <-deadline:
			return
		}
	}
}

// outputLoss says what part of the output an output-end event counted
// did not reach run's stdout and stderr, or nil when it all did.
func (c *channels) outputLoss(e contract.Event) error {
	var errs []string
	for _, p := range []struct {
		port, name string
		want       int64
	}{{contract.StdoutPort, "stdout", e.StdoutBytes}, {contract.StderrPort, "stderr", e.StderrBytes}} {
		if got := c.copied(p.port); got < p.want {
			errs = append(errs, fmt.Sprintf("%d of the %d bytes the apps wrote to %s", got, p.want, p.name))
		}
	}
	if errs == nil {
		return nil
	}
	return fmt.Errorf("%w: only %s were passed on", ErrOutputLost, strings.Join(errs, " and "))
}

// feedStdin copies stdin to port once ready is closed (the guest holds the
// port open), then half-closes: that tells QEMU, and so the guest, that
// stdin ended, where a full close would make QEMU drop what it has not yet
// passed on.
func (c *channels) feedStdin(port string, stdin io.Reader, ready <-chan struct{}) {
	ch, ok := c.conns[port]
	if !ok {
		return
	}
	go func() {
		<-ready
		if conn, ok := <-ch; ok {
			io.Copy(conn, stdin)
			conn.(*net.UnixConn).CloseWrite()
		}
	}()
}

// maxEventLine bounds one event line from the guest: real ones are tens
// of bytes. A longer line is skipped whole, never buffered.
const maxEventLine = 4096

// readEvents parses the guest's event lines on port; the channel is closed
// when the guest's end closes. Lines that do not parse, or are too long,
// are passed to skip. When the guest says it is at the template point, it
// writes greeting() (the pod's configuration) to the guest, once. (Not
// before: QEMU holds what the host writes until the guest opens the port,
// and the pre-init opens and closes it first, which would drop it.)
func (c *channels) readEvents(port string, greeting func() ([]byte, error), skip func(error)) <-chan contract.Event {
	evc := make(chan contract.Event, 16)
	c.pumps.Add(1)
	go func() {
		defer c.pumps.Done()
		defer close(evc)
		conn, ok := <-c.conns[port]
		if !ok {
			return
		}
		defer conn.Close()
		greeted := false
		r := bufio.NewReaderSize(conn, maxEventLine)
		for {
			line, err := readLine(r)
			if errors.Is(err, errLongLine) {
				skip(err)
				continue
			} else if err != nil {
				return
			}
			e, err := contract.ParseEvent(line)
			if err != nil {
				skip(err)
				continue
			}
			if e.Kind == contract.EventTemplatePoint && !greeted {
				greeted = true
				b, err := greeting()
				if err == nil && len(b) > 0 {
					_, err = conn.Write(b)
				}
				if err != nil {
					skip(err)
					return
				}
			}
			evc <- e
		}
	}()
	return evc
}

// errLongLine is a line over maxEventLine.
var errLongLine = fmt.Errorf("event line over %d bytes", maxEventLine)

// readLine reads one line of at most r's buffer size; a longer one is read
// to its end and dropped (errLongLine).
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return string(line), err
	}
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = r.ReadSlice('\n')
	}
	if err != nil {
		return "", err
	}
	return "", errLongLine
}

// abandonAfter closes, after d, the connections nobody has taken yet: once
// QEMU is gone, a port it never connected must not keep wait waiting.
func (c *channels) abandonAfter(d time.Duration) {
	go func() {
		time.Sleep(d)
		for _, ch := range c.conns {
			select {
			case conn, ok := <-ch:
				if ok {
					conn.Close()
				}
			default:
			}
		}
	}()
}

// wait waits for the copies towards the host to end.
func (c *channels) wait() { c.pumps.Wait() }
