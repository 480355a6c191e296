package guest

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// The handover between the configure program and the forwarder: the
// forwarder gets what configure sent, and configure gets the forwarder's
// answer, a refusal included.
func TestIOConfigHandover(t *testing.T) {
	want := contract.IOConfig{Apps: []string{"web", "db"}, Interactive: "web", TTY: true}
	for _, refuse := range []error{nil, errors.New("create FIFO /run/stage1/io/web.stdout:\nno space")} {
		configure, forwarder := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- exchangeIOConfig(configure, want) }()
		got, err := readIOConfig(forwarder)
		if err != nil || strings.Join(got.Apps, ",") != "web,db" || got.Interactive != "web" || !got.TTY {
			t.Fatalf("readIOConfig = %+v, %v; want %+v", got, err, want)
		}
		answerIOConfig(forwarder, refuse)
		err = <-done
		switch {
		case refuse == nil && err != nil:
			t.Errorf("accepted handover: %v", err)
		case refuse != nil && (!errors.Is(err, ErrIOConfig) || !strings.Contains(err.Error(), "no space")):
			t.Errorf("refused handover: %v, want ErrIOConfig with the forwarder's reason", err)
		}
		configure.Close()
		forwarder.Close()
	}
}

// The forwarder refuses a configuration it cannot serve, and a line
// without an end within its bound, without reading on.
func TestReadIOConfigRefused(t *testing.T) {
	for name, in := range map[string]string{
		"no apps":     `{"apps":[]}` + "\n",
		"path in app": `{"apps":["../x"]}` + "\n",
		"not JSON":    "x\n",
		"no newline":  `{"apps":["a"]}`,
		"over bound":  strings.Repeat(" ", maxIOConfig+1),
	} {
		if _, err := readIOConfig(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A guest powered off before its pod: the forwarder ends without one.
func TestAwaitIOConfigStopped(t *testing.T) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: t.TempDir() + "/s", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stop := make(chan os.Signal, 1)
	stop <- os.Interrupt
	if conn, _, err := awaitIOConfig(l, stop); conn != nil || err != nil {
		t.Errorf("awaitIOConfig after stop = %v, %v; want no connection, no error", conn, err)
	}
}
