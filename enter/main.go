// Command enter is the stage1 enter entry point: rkt execs it in the pod
// directory as
//
//	enter --pid=N --appname=A -- cmd args...
//
// and its exit code is `rkt enter`'s. It asks the pod's guest agent, through
// the pod's agent socket, to run the command in app A and relays the
// command's standard streams (on a terminal of its own when enter's stdin
// and stdout are terminals) and exit status.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/stage1-kvm/stage1-kvm/stage1/agentproto"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// Exit codes of our own failures (the command's code passes through).
const (
	exitUsage  = 2
	exitFailed = 254
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("enter", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("pid", 0, "the pod's process (unused: the pod is reached through its agent socket)")
	app := fs.String("appname", "", "the app to run the command in")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "stage1 enter: %v\nusage: enter --pid=N --appname=APP -- CMD [ARGS...]\n", err)
		return exitUsage
	}
	if *app == "" || fs.NArg() == 0 {
		fmt.Fprintf(os.Stderr, "stage1 enter: need --appname and a command\nusage: enter --pid=N --appname=APP -- CMD [ARGS...]\n")
		return exitUsage
	}
	code, err := enter(*app, fs.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 enter: %v\n", err)
		var re *agentproto.RemoteError
		if errors.As(err, &re) && re.Status > 0 {
			return re.Status
		}
		return exitFailed
	}
	return code
}

func enter(app string, argv []string) (int, error) {
	conn, err := agentproto.Dial(contract.AgentSocket)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	req := agentproto.ExecRequest{App: app, Argv: argv}
	inFd, outFd := int(os.Stdin.Fd()), int(os.Stdout.Fd())
	if !term.IsTerminal(inFd) || !term.IsTerminal(outFd) {
		// Pipes: stdout and stderr stay apart, stdin's EOF reaches the
		// command.
		return agentproto.Exec(conn, req, os.Stdin, os.Stdout, os.Stderr, nil)
	}

	req.TTY = true
	req.Term = os.Getenv("TERM")
	req.Size = terminalSize(outFd)
	resize := make(chan agentproto.Size, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	go func() {
		for range winch {
			select {
			case <-resize: // a newer size replaces one not sent yet
			default:
			}
			resize <- terminalSize(outFd)
		}
	}()
	// Raw mode: every key, ^C included, goes to the command's terminal.
	old, err := term.MakeRaw(inFd)
	if err != nil {
		return 0, fmt.Errorf("terminal raw mode: %w", err)
	}
	defer term.Restore(inFd, old)
	// Signals that would end enter itself must not leave the terminal raw.
	quit := make(chan os.Signal, 1)
	signal.Notify(quit, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-quit
		term.Restore(inFd, old)
		signal.Reset(s)
		syscall.Kill(os.Getpid(), s.(syscall.Signal))
	}()
	return agentproto.Exec(conn, req, os.Stdin, os.Stdout, nil, resize)
}

// terminalSize is fd's size, 24x80 if it cannot be read.
func terminalSize(fd int) agentproto.Size {
	w, h, err := term.GetSize(fd)
	if err != nil || w <= 0 || h <= 0 || w > 0xffff || h > 0xffff {
		return agentproto.Size{Rows: 24, Cols: 80}
	}
	return agentproto.Size{Rows: uint16(h), Cols: uint16(w)}
}
