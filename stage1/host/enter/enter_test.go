package enter

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// enterPod runs Run as the entry point does (cli.Exit) and returns its exit
// code and what it printed on stderr. The streams are not terminals.
func enterPod(t *testing.T, podDir string, argv ...string) (int, string) {
	t.Helper()
	in, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	code, err := Run(podDir, "a", argv, Stdio{In: in, Out: out, Err: stderr})
	var msg bytes.Buffer
	code = cli.Report(&msg, Prog, code, err)
	b, err := os.ReadFile(stderr.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, string(b) + msg.String()
}

func TestPodNotRunning(t *testing.T) {
	code, msg := enterPod(t, t.TempDir(), "sh")
	if code != cli.Failed || !strings.Contains(msg, "pod is not running") {
		t.Errorf("exit %d, stderr %q", code, msg)
	}
}

func TestAgentErrorStatus(t *testing.T) {
	// A fake agent refusing with a status: enter exits with it.
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, contract.AgentSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, `{"version":1,"error":"exec: nope: not found","status":127}`+"\n")
	}()
	code, msg := enterPod(t, dir, "nope")
	if code != 127 || !strings.Contains(msg, "exec: nope: not found") {
		t.Errorf("exit %d, stderr %q", code, msg)
	}
}
