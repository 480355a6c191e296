// Command stop is the stage1 stop entry point: `stop [--force] UUID`, run by
// rkt in the pod directory. It returns once the pod's run process has exited.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/podstop"
)

func main() {
	fs := flag.NewFlagSet("stop", flag.ContinueOnError)
	force := fs.Bool("force", false, "kill the VM at once")
	if err := fs.Parse(os.Args[1:]); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "stage1 stop: usage: stop [--force] UUID")
		os.Exit(2)
	}
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 stop: %v\n", err)
		os.Exit(1)
	}
	if err := podstop.Stop(dir, *force); err != nil {
		fmt.Fprintf(os.Stderr, "stage1 stop: pod %s: %v\n", fs.Arg(0), err)
		os.Exit(1)
	}
}
