// Package settings reads the run entry point's environment knobs
// (documented in README.md) once, up front, into one validated value.
// Nothing else in the stage1 reads its own settings from the environment.
package settings

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// Environment variables.
const (
	// AccelEnv forces the accelerator: "kvm", "tcg" or "auto" (default).
	AccelEnv = "STAGE1_KVM_ACCEL"
	// QEMUEnv points at a host QEMU to use instead of the bundled one.
	QEMUEnv = "STAGE1_KVM_QEMU"
	// KernelArgsEnv appends arguments to the guest kernel command line
	// (for debugging, e.g. systemd.log_level=debug).
	KernelArgsEnv = "STAGE1_KVM_KERNEL_ARGS"
	// TCGBufferEnv sets the size in MiB of QEMU's TCG translation cache:
	// smaller saves host memory, larger saves retranslation. Ignored
	// under KVM.
	TCGBufferEnv = "STAGE1_KVM_TCG_BUFFER_MIB"
	// SharedFSEnv picks how the pod's directory and its writable host
	// volumes reach the guest: "9p" (the default) or "virtiofs".
	SharedFSEnv = "STAGE1_KVM_SHARED_FS"
	// BootTimeoutEnv bounds how long the guest may take to start the
	// apps (a Go duration, e.g. 90s).
	BootTimeoutEnv = "STAGE1_KVM_BOOT_TIMEOUT"
	// TemplateEnv turns starting from a template on or off ("on",
	// "off"; docs/architecture.md, "Templates").
	TemplateEnv = "STAGE1_KVM_TEMPLATE"
	// TemplateDirEnv is where templates are kept (DefaultTemplateDir).
	TemplateDirEnv = "STAGE1_KVM_TEMPLATE_DIR"
	// LockFDEnv is rkt's: the inherited descriptor holding the pod lock.
	LockFDEnv = "RKT_LOCK_FD"
	// PauseAfterEnv is for fault tests only: run stops itself (SIGSTOP)
	// right after the start step of that name (supervisor.StepIDs), so a
	// test can kill it there and check that gc leaves nothing.
	PauseAfterEnv = "STAGE1_KVM_TEST_PAUSE_AFTER"
)

// Defaults and bounds.
const (
	// DefaultTCGBufferMiB bounds QEMU's TCG translation cache: QEMU's own
	// default dominates an idle guest's host memory, while 32 MiB fills
	// up as the apps start and the flushes that follow make every first
	// run of an app's code twice as slow (docs/benchmarks.md).
	DefaultTCGBufferMiB = 64
	maxTCGBufferMiB     = 2048
	// Default boot bounds: a healthy TCG boot here takes 1-4 s, a KVM
	// boot well under 1 s; the bound only has to end hopeless cases
	// (e.g. a host whose KVM cannot run our kernel) instead of hanging.
	DefaultBootTimeoutTCG = 120 * time.Second
	DefaultBootTimeoutKVM = 30 * time.Second
	// DefaultTemplateDir holds the templates: a host directory outside
	// every pod, root's only.
	DefaultTemplateDir = "/var/lib/stage1-kvm/templates"
)

// ErrInvalid wraps every problem Validate finds.
var ErrInvalid = errors.New("invalid setting")

// Settings are the run entry point's knobs.
type Settings struct {
	// Accel is "auto", "kvm" or "tcg" (qemu.ChooseAccel decides).
	Accel string
	// QEMU is a host QEMU's path; empty means the bundled one.
	QEMU string
	// KernelArgs are appended to the guest kernel's command line.
	KernelArgs []string
	// TCGBufferMiB is the TCG translation cache size.
	TCGBufferMiB int
	// SharedFS carries the pod share and writable volumes.
	SharedFS qemu.Transport
	// BootTimeout, when not zero, replaces the accelerator's default.
	BootTimeout time.Duration
	// Template: start from a template (made on first use).
	Template bool
	// TemplateDir is where templates are kept (absolute).
	TemplateDir string
	// LockFD is rkt's pod lock descriptor, -1 when not started by rkt.
	LockFD int
	// PauseAfter names the start step after which run stops itself
	// (PauseAfterEnv); empty in normal use.
	PauseAfter string
}

// Default is what an empty environment gives.
func Default() Settings {
	return Settings{Accel: "auto", TCGBufferMiB: DefaultTCGBufferMiB, SharedFS: qemu.NineP, LockFD: -1, Template: true, TemplateDir: DefaultTemplateDir}
}

// FromEnv reads every setting through getenv (os.Getenv in production)
// and validates the result. A bad value is an error naming its variable;
// every problem is reported at once.
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Default()
	var errs *multierror.Error
	bad := func(name, value, want string) {
		errs = multierror.Append(errs, fmt.Errorf("%w: %s=%q: %s", ErrInvalid, name, value, want))
	}
	if v := getenv(AccelEnv); v != "" {
		s.Accel = v
	}
	s.QEMU = getenv(QEMUEnv)
	s.PauseAfter = getenv(PauseAfterEnv)
	s.KernelArgs = strings.Fields(getenv(KernelArgsEnv))
	if v := getenv(TCGBufferEnv); v != "" {
		if n, err := strconv.Atoi(v); err != nil {
			bad(TCGBufferEnv, v, "want a size in MiB")
		} else {
			s.TCGBufferMiB = n
		}
	}
	if v := getenv(SharedFSEnv); v != "" {
		s.SharedFS = qemu.Transport(v)
	}
	if v := getenv(BootTimeoutEnv); v != "" {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			bad(BootTimeoutEnv, v, "want a positive Go duration such as 90s")
		} else {
			s.BootTimeout = d
		}
	}
	switch v := getenv(TemplateEnv); v {
	case "":
	case "on":
		s.Template = true
	case "off":
		s.Template = false
	default:
		bad(TemplateEnv, v, "want on or off")
	}
	if v := getenv(TemplateDirEnv); v != "" {
		s.TemplateDir = v
	}
	if v := getenv(LockFDEnv); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 0 {
			bad(LockFDEnv, v, "want a file descriptor number")
		} else {
			s.LockFD = fd
		}
	}
	errs = multierror.Append(errs, s.Validate())
	errs.ErrorFormat = listErrors
	return s, errs.ErrorOrNil()
}

// listErrors formats several problems on one line each.
func listErrors(errs []error) string {
	lines := make([]string, len(errs))
	for i, err := range errs {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "; ")
}

// Validate reports every problem with s at once, each naming the variable
// that sets it.
func (s Settings) Validate() error {
	var errs *multierror.Error
	bad := func(name string, value any, want string) {
		errs = multierror.Append(errs, fmt.Errorf("%w: %s=%q: %s", ErrInvalid, name, fmt.Sprint(value), want))
	}
	switch s.Accel {
	case "auto", "kvm", "tcg":
	default:
		bad(AccelEnv, s.Accel, "want kvm, tcg or auto")
	}
	if s.TCGBufferMiB < 1 || s.TCGBufferMiB > maxTCGBufferMiB {
		bad(TCGBufferEnv, s.TCGBufferMiB, fmt.Sprintf("want a size in MiB from 1 to %d", maxTCGBufferMiB))
	}
	switch s.SharedFS {
	case qemu.NineP, qemu.Virtiofs:
	default:
		bad(SharedFSEnv, s.SharedFS, "want 9p or virtiofs")
	}
	if s.BootTimeout < 0 {
		bad(BootTimeoutEnv, s.BootTimeout, "want a positive duration")
	}
	if !filepath.IsAbs(s.TemplateDir) || strings.Contains(s.TemplateDir, ",") {
		bad(TemplateDirEnv, s.TemplateDir, "want an absolute path without commas")
	}
	if strings.ContainsAny(s.QEMU, ",\n") {
		bad(QEMUEnv, s.QEMU, "a path without commas or newlines")
	}
	if errs != nil {
		errs.ErrorFormat = listErrors
	}
	return errs.ErrorOrNil()
}

// BootTimeoutFor is the boot bound for accel: BootTimeout if set, else the
// accelerator's default.
func (s Settings) BootTimeoutFor(accel qemu.Accel) time.Duration {
	switch {
	case s.BootTimeout > 0:
		return s.BootTimeout
	case accel == qemu.KVM:
		return DefaultBootTimeoutKVM
	default:
		return DefaultBootTimeoutTCG
	}
}
