// Package jail confines a program as a jailplan.Plan says (docs/security.md).
// Go cannot change a child's root, capabilities or no_new_privs between
// fork and exec, so a small program does it: the jailer. Start (in the run
// entry point) starts the jailer in new namespaces and returns once the
// jailer has executed the program, which keeps the jailer's PID; Exec (in
// the jailer) builds the jail, drops privileges and executes the program.
package jail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/jailplan"
)

// PlanEnv carries the plan (JSON) from Start to the jailer, which gives the
// program Plan.Env instead of its own environment.
const PlanEnv = "STAGE1_KVM_JAIL_PLAN"

// setupTimeout bounds the jailer's work up to executing the program.
const setupTimeout = 30 * time.Second

// maxStatus bounds what the jailer may report.
const maxStatus = 4096

// ErrJailer means the jailer could not confine or execute the program.
var ErrJailer = errors.New("jailer")

// Options are how Start runs the jailer.
type Options struct {
	// Jailer is the jailer program.
	Jailer string
	// Files are the program's inherited descriptors, 3 onwards
	// (Plan.Files of them).
	Files          []*os.File
	Stdout, Stderr io.Writer
}

// cloneFlags: a plan with a jail gets every namespace the program can do
// without (the mount namespace for the jail, PID for a procfs of its own and
// no one else to see or signal, network for no host socket, abstract
// ones included, IPC and UTS); without a jail, the host's.
func cloneFlags(p jailplan.Plan) uintptr {
	if p.Root == "" {
		return 0
	}
	return syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
		syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS
}

// Start starts argv confined as p says and returns once the program runs
// (the jailer executed it: its PID is the command's) or the jailer failed.
// The caller waits for the command. Like every process run starts, it gets
// SIGKILL when run dies.
func Start(p jailplan.Plan, argv []string, o Options) (*exec.Cmd, error) {
	if len(argv) == 0 || o.Jailer == "" {
		return nil, fmt.Errorf("%w: no program or no jailer", ErrJailer)
	}
	if len(o.Files) != p.Files {
		return nil, fmt.Errorf("%w: %d descriptors for a plan of %d", ErrJailer, len(o.Files), p.Files)
	}
	plan, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := &exec.Cmd{
		Path:       o.Jailer,
		Args:       append([]string{o.Jailer}, argv...),
		Env:        []string{PlanEnv + "=" + string(plan)},
		Stdout:     o.Stdout,
		Stderr:     o.Stderr,
		ExtraFiles: append(slices.Clone(o.Files), w),
		SysProcAttr: &syscall.SysProcAttr{
			Pdeathsig:  syscall.SIGKILL,
			Cloneflags: cloneFlags(p),
		},
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("start the jailer: %w", err)
	}
	if err := awaitExec(r); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	return cmd, nil
}

// awaitExec reads the jailer's status pipe: it closes on exec (close on
// exec) with nothing said, or carries the jailer's error.
func awaitExec(r *os.File) error {
	r.SetReadDeadline(time.Now().Add(setupTimeout))
	b, err := io.ReadAll(io.LimitReader(r, maxStatus))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: not done after %v", ErrJailer, setupTimeout)
	}
	if err != nil {
		return fmt.Errorf("%w: status: %w", ErrJailer, err)
	}
	if len(b) > 0 {
		return fmt.Errorf("%w: %s", ErrJailer, strings.TrimSpace(string(b)))
	}
	return nil
}
