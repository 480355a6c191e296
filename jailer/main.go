// Command jailer confines the pod's VMM before executing it (docs/security.md):
// the run entry point starts it, through stage1/host/jail.Start, in new
// namespaces with the program's command line as its arguments and the plan
// in its environment; it builds the jail, drops privileges and executes the
// program, which keeps its PID. It is not for use by hand. Exit codes are
// cli's (it exits only when it fails).
package main

import (
	"os"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/jail"
)

func main() {
	cli.Exit("stage1 jailer", 0, jail.Exec(os.Getenv(jail.PlanEnv), os.Args[1:]))
}
