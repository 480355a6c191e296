// Command enter is the stage1 enter entry point: rkt execs it in the pod
// directory as
//
//	enter --pid=N --appname=A -- cmd args...
//
// and its exit code is `rkt enter`'s: the command's, or cli's for a failure
// of enter itself. The work is in stage1/host/enter.
package main

import (
	"flag"
	"io"
	"os"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/enter"
)

const usage = "enter --pid=N --appname=APP -- CMD [ARGS...]"

func main() {
	code, err := run(os.Args[1:])
	cli.Exit(enter.Prog, code, err)
}

func run(args []string) (int, error) {
	fs := flag.NewFlagSet("enter", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("pid", 0, "the pod's process (unused: the pod is reached through its agent socket)")
	app := fs.String("appname", "", "the app to run the command in")
	if err := fs.Parse(args); err != nil {
		return 0, cli.Usagef("%s (%v)", usage, err)
	}
	if *app == "" || fs.NArg() == 0 {
		return 0, cli.Usagef("%s (need --appname and a command)", usage)
	}
	return enter.Run(".", *app, fs.Args(), enter.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
}
