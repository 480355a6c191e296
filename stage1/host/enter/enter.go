// Package enter is the stage1 enter entry point's work: it asks a running
// pod's guest agent, through the pod's agent socket, to run a command in one
// of the pod's apps, and relays the command's standard streams (on a
// terminal of its own when the caller's stdin and stdout are terminals) and
// exit status.
package enter

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/term"

	"github.com/stage1-kvm/stage1-kvm/stage1/agentproto"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// Prog is how the enter entry point names itself in its messages.
const Prog = "stage1 enter"

// Stdio is the standard streams the command gets.
type Stdio struct {
	In, Out, Err *os.File
}

// Run runs argv in app of the pod in podDir and returns the command's exit
// status (128+N for a command killed by signal N); an error is a failure of
// enter itself. When the agent refuses the command with a status of its own
// (127 for a command that is not found, 126 for one that cannot run), Run
// prints the refusal on stdio.Err, as Prog's, and returns that status with
// no error: it is the command's exit status, as a shell's would be.
func Run(podDir, app string, argv []string, stdio Stdio) (int, error) {
	code, err := run(podDir, app, argv, stdio)
	var re *agentproto.RemoteError
	if errors.As(err, &re) && re.Status > 0 {
		fmt.Fprintf(stdio.Err, "%s: %v\n", Prog, err)
		return re.Status, nil
	}
	return code, err
}

func run(podDir, app string, argv []string, stdio Stdio) (int, error) {
	conn, err := agentproto.Dial(filepath.Join(podDir, contract.AgentSocket))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	req := agentproto.ExecRequest{App: app, Argv: argv}
	inFd, outFd := int(stdio.In.Fd()), int(stdio.Out.Fd())
	if !term.IsTerminal(inFd) || !term.IsTerminal(outFd) {
		// Pipes: stdout and stderr stay apart, stdin's EOF reaches the
		// command.
		return agentproto.Exec(conn, req, stdio.In, stdio.Out, stdio.Err, nil)
	}
	req.TTY = true
	req.Term = os.Getenv("TERM")
	req.Size = terminalSize(outFd)
	resize, stop := relayResizes(outFd)
	defer stop()
	restore, err := rawMode(inFd)
	if err != nil {
		return 0, err
	}
	defer restore()
	return agentproto.Exec(conn, req, stdio.In, stdio.Out, nil, resize)
}

// relayResizes sends outFd's new size on the returned channel whenever the
// terminal is resized (SIGWINCH), until stop is called.
func relayResizes(outFd int) (resize <-chan agentproto.Size, stop func()) {
	sizes := make(chan agentproto.Size, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		for range winch {
			select {
			case <-sizes: // a newer size replaces one not sent yet
			default:
			}
			sizes <- terminalSize(outFd)
		}
	}()
	return sizes, func() { signal.Stop(winch) }
}

// rawMode puts the terminal inFd in raw mode, so that every key, ^C
// included, goes to the command's terminal; restore undoes it. The signals
// that would end enter itself restore the terminal first.
func rawMode(inFd int) (restore func(), err error) {
	old, err := term.MakeRaw(inFd)
	if err != nil {
		return nil, fmt.Errorf("terminal raw mode: %w", err)
	}
	quit := make(chan os.Signal, 1)
	signal.Notify(quit, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-quit
		term.Restore(inFd, old)
		signal.Reset(s)
		syscall.Kill(os.Getpid(), s.(syscall.Signal))
	}()
	return func() { term.Restore(inFd, old) }, nil
}

// terminalSize is fd's size, 24x80 if it cannot be read.
func terminalSize(fd int) agentproto.Size {
	w, h, err := term.GetSize(fd)
	if err != nil || w <= 0 || h <= 0 || w > 0xffff || h > 0xffff {
		return agentproto.Size{Rows: 24, Cols: 80}
	}
	return agentproto.Size{Rows: uint16(h), Cols: uint16(w)}
}
