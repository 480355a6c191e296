// Command init is the stage1 run entry point (/init in the ACI). rkt execs it
// in the pod directory; it boots the pod's VM, supervises it and exits with
// the pod's exit code.
package main

import (
	"fmt"
	"os"

	"github.com/stage1-kvm/stage1-kvm/stage1/runflags"
)

func main() {
	opts, err := runflags.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 run: %v\n", err)
		os.Exit(254)
	}
	fmt.Fprintf(os.Stderr, "stage1 run: pod %s: running pods is not implemented yet\n", opts.UUID)
	os.Exit(254)
}
