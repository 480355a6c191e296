package guest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// The I/O forwarder is up before the template point, so the pod's part of
// it is handed over at the pod's start: the configure program connects to
// contract.IOConfigSocket, sends the pod's contract.IOConfig as one JSON
// line, and reads one line back, "ok" once the forwarder serves the pod
// (FIFOs made, agent up), or what went wrong. Both ends are root programs
// of the guest image.

// ioConfigTimeout bounds the configure program's wait for the forwarder:
// it answers within milliseconds unless it is stuck, and then no app
// could start.
const ioConfigTimeout = 30 * time.Second

// maxIOConfig bounds the line the forwarder reads.
const maxIOConfig = 1 << 20

const ioConfigOK = "ok"

// ErrIOConfig is a handover the forwarder refused or never answered.
var ErrIOConfig = errors.New("I/O forwarder")

// sendIOConfig hands c to the forwarder and waits for its answer.
func sendIOConfig(c contract.IOConfig) error {
	conn, err := net.DialTimeout("unix", contract.IOConfigSocket, ioConfigTimeout)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIOConfig, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(ioConfigTimeout))
	return exchangeIOConfig(conn, c)
}

// exchangeIOConfig is sendIOConfig's conversation on conn.
func exchangeIOConfig(conn io.ReadWriter, c contract.IOConfig) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%w: send the pod's I/O: %w", ErrIOConfig, err)
	}
	answer, err := bufio.NewReader(io.LimitReader(conn, maxIOConfig)).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%w: no answer: %w", ErrIOConfig, err)
	}
	if answer = strings.TrimSuffix(answer, "\n"); answer != ioConfigOK {
		return fmt.Errorf("%w: %s", ErrIOConfig, answer)
	}
	return nil
}

// listenIOConfig is the forwarder's end, made before it tells systemd it
// is ready (the configure service is ordered after it).
// Only root may connect (a socket's connect needs write permission).
func listenIOConfig() (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(contract.IOConfigSocket), 0o755); err != nil {
		return nil, err
	}
	os.Remove(contract.IOConfigSocket)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: contract.IOConfigSocket, Net: "unix"})
	if err == nil {
		err = os.Chmod(contract.IOConfigSocket, 0o600)
	}
	if err != nil {
		if l != nil {
			l.Close()
		}
		return nil, fmt.Errorf("listen for the pod's I/O: %w", err)
	}
	return l, nil
}

// awaitIOConfig takes the first connection on l and reads a configuration
// from it; it returns a nil connection if stop comes first (a guest
// powered off before it had a pod).
func awaitIOConfig(l *net.UnixListener, stop <-chan os.Signal) (net.Conn, contract.IOConfig, error) {
	type accepted struct {
		conn net.Conn
		err  error
	}
	got := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		got <- accepted{c, err}
	}()
	select {
	case <-stop:
		return nil, contract.IOConfig{}, nil
	case a := <-got:
		if a.err != nil {
			return nil, contract.IOConfig{}, fmt.Errorf("wait for the pod's I/O: %w", a.err)
		}
		a.conn.SetReadDeadline(time.Now().Add(ioConfigTimeout))
		c, err := readIOConfig(a.conn)
		a.conn.SetReadDeadline(time.Time{})
		return a.conn, c, err
	}
}

// readIOConfig reads one JSON line, at most maxIOConfig bytes, and checks it.
func readIOConfig(r io.Reader) (contract.IOConfig, error) {
	var c contract.IOConfig
	line, err := bufio.NewReader(io.LimitReader(r, maxIOConfig)).ReadBytes('\n')
	if err != nil {
		return c, fmt.Errorf("read the pod's I/O: %w", err)
	}
	if err := json.Unmarshal(line, &c); err != nil {
		return c, fmt.Errorf("read the pod's I/O: %w", err)
	}
	return c, c.Check()
}

// answerIOConfig tells the configure program how the handover went.
func answerIOConfig(w io.Writer, err error) {
	answer := ioConfigOK
	if err != nil {
		// One line: the error's text, newlines and all, flattened.
		answer = strings.ReplaceAll(err.Error(), "\n", " ")
	}
	fmt.Fprintln(w, answer)
}
