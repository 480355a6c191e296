// Package runflags parses the run entry point's command line exactly as rkt's
// stage0 passes it for stage1 interface version 6 (docs/architecture.md,
// "The stage0 contract"): flags first, the pod UUID last.
package runflags

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
)

// ErrUsage wraps every command-line error (it is cli.ErrUsage: the entry
// point exits with cli.Usage).
var ErrUsage = cli.ErrUsage

// ErrUnsupported is returned for flags that cannot apply to a VM. It is a
// usage error too.
var ErrUnsupported error = unsupported{}

type unsupported struct{}

func (unsupported) Error() string        { return "not supported by the kvm stage1" }
func (unsupported) Is(target error) bool { return target == cli.ErrUsage }

// Options is the parsed command line.
type Options struct {
	Debug        bool
	Nets         []string // --net, comma separated; "default" when absent
	Interactive  bool
	PrivateUsers string
	MDSToken     string
	LocalConfig  string
	Hostname     string
	// DNSConfMode maps "resolv" and "hosts" to their modes.
	DNSConfMode    map[string]string
	DisableCaps    bool
	DisablePaths   bool
	DisableSeccomp bool
	Mutable        bool
	IPC            string
	UUID           *types.UUID
	RawUUID        string
}

// PodHostname is the guest's hostname: --hostname, else rkt's default
// "rkt-<uuid>".
func (o *Options) PodHostname() string {
	if o.Hostname != "" {
		return o.Hostname
	}
	return "rkt-" + o.UUID.String()
}

// parseUUID parses the pod UUID argument.
func parseUUID(raw string) (*types.UUID, error) {
	if strings.HasPrefix(raw, "-") {
		// appc's parser drops dashes anywhere, but rkt never writes one
		// first, and after the flags it would read as one.
		return nil, fmt.Errorf("%w: bad pod UUID %q: it begins with '-'", ErrUsage, raw)
	}
	u, err := types.NewUUID(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: bad pod UUID %q: %v", ErrUsage, raw, err)
	}
	return u, nil
}

// Parse parses args (without argv[0]).
func Parse(args []string) (*Options, error) {
	o := &Options{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&o.Debug, "debug", false, "")
	net := fs.String("net", "default", "")
	fs.BoolVar(&o.Interactive, "interactive", false, "")
	fs.StringVar(&o.PrivateUsers, "private-users", "", "")
	fs.StringVar(&o.MDSToken, "mds-token", "", "")
	fs.StringVar(&o.LocalConfig, "local-config", "/etc/rkt", "")
	fs.StringVar(&o.Hostname, "hostname", "", "")
	dns := fs.String("dns-conf-mode", "", "")
	fs.BoolVar(&o.DisableCaps, "disable-capabilities-restriction", false, "")
	fs.BoolVar(&o.DisablePaths, "disable-paths", false, "")
	fs.BoolVar(&o.DisableSeccomp, "disable-seccomp", false, "")
	fs.BoolVar(&o.Mutable, "mutable", false, "")
	fs.StringVar(&o.IPC, "ipc", "auto", "")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() != 1 {
		return nil, fmt.Errorf("%w: want exactly one pod UUID after the flags, got %q", ErrUsage, fs.Args())
	}
	o.RawUUID = fs.Arg(0)
	var err error
	if o.UUID, err = parseUUID(o.RawUUID); err != nil {
		return nil, err
	}
	for _, n := range strings.Split(*net, ",") {
		if n = strings.TrimSpace(n); n != "" {
			o.Nets = append(o.Nets, n)
		}
	}
	if len(o.Nets) == 0 {
		return nil, fmt.Errorf("%w: empty --net", ErrUsage)
	}
	if o.DNSConfMode, err = parseDNSConfMode(*dns); err != nil {
		return nil, err
	}
	if o.Hostname != "" && !validHostname(o.Hostname) {
		return nil, fmt.Errorf("%w: --hostname=%q is not a host name (at most %d letters, digits, '-' and '.', in labels)", ErrUsage, o.Hostname, maxHostname)
	}
	switch {
	case o.PrivateUsers != "":
		return nil, fmt.Errorf("--private-users is %w: a pod in a VM already has its own kernel and user IDs", ErrUnsupported)
	case o.IPC == "parent":
		return nil, fmt.Errorf("--ipc=parent is %w: a VM cannot share the host's IPC namespace", ErrUnsupported)
	case o.IPC != "auto" && o.IPC != "private":
		return nil, fmt.Errorf("%w: --ipc=%q, want auto, private or parent", ErrUsage, o.IPC)
	}
	for _, n := range o.Nets {
		if n == "host" {
			return nil, fmt.Errorf("--net=host is %w: a VM has its own network stack and cannot share the host's; use --net=default or a named network", ErrUnsupported)
		}
	}
	return o, nil
}

// parseDNSConfMode parses "resolv=X,hosts=Y" (rkt's format).
func parseDNSConfMode(s string) (map[string]string, error) {
	m := map[string]string{"resolv": "default", "hosts": "default"}
	if s == "" {
		return m, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || (k != "resolv" && k != "hosts") || v == "" {
			return nil, fmt.Errorf("%w: bad --dns-conf-mode element %q", ErrUsage, kv)
		}
		m[k] = v
	}
	return m, nil
}

// maxHostname is the kernel's HOST_NAME_MAX.
const maxHostname = 64

// validHostname accepts what systemd's hostname_is_valid accepts (as
// systemd-nspawn, which rkt's own stage1 passes --hostname to): labels of
// ASCII letters, digits and '-' joined by single dots, at most
// maxHostname bytes. The name goes to the guest kernel's command line and
// to the pod's /etc/hosts, so nothing else may be in it.
func validHostname(h string) bool {
	if len(h) > maxHostname {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}
