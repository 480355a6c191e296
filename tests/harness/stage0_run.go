package harness

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
)

// DefaultRunTimeout bounds a pod run when RunOpts.Timeout is zero.
const DefaultRunTimeout = 3 * time.Minute

// defaultLockFD is the descriptor number of the pod lock in the run entry
// point. rkt's varies; it is deliberately not 3, so a stage1 that assumes
// the first free descriptor instead of reading RKT_LOCK_FD fails here.
const defaultLockFD = 5

// RunOpts are the `rkt run` flags that reach the stage1, plus how the test
// connects to the run process.
type RunOpts struct {
	Debug       bool   // global --debug
	Interactive bool   // --interactive (one app only)
	Net         string // --net list; "" is rkt's "default"; always passed
	Hostname    string // --hostname, passed only if non-empty
	// LocalConfig is --local-config (DefaultLocalConfig if empty). With
	// RunPrepared it is not passed, as `rkt run-prepared` does not.
	LocalConfig string
	RunPrepared bool
	MDSToken    string // --mds-token, as if --mds-register got this token
	// DNS (--dns: addresses, or "host" / "none"), DNSSearch, DNSOpt,
	// DNSDomain and HostsEntries (--hosts-entry: "IP=name" or "host") make
	// stage0 write etc/rkt-resolv.conf / etc/rkt-hosts in the stage1 rootfs
	// and pass --dns-conf-mode, like rkt.
	DNS          []string
	DNSSearch    []string
	DNSOpt       []string
	DNSDomain    string
	HostsEntries []string
	// --insecure-options=capabilities,paths,seccomp.
	DisableCapabilities, DisablePaths, DisableSeccomp bool
	IPC                                               string // --ipc
	// Extra are further stage1 flags (e.g. "--private-users=0:65536",
	// "--mutable"); each goes where rkt would put it.
	Extra []string

	// Stdin, Stdout, Stderr are the run process's fds 0-2; nil Stdin is
	// /dev/null, nil Stdout/Stderr are captured into the RunResult.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Env            []string      // added to (or replacing in) the caller's environment
	LockFD         int           // lock descriptor number in the child; 0 means 5
	Timeout        time.Duration // 0 means DefaultRunTimeout
	// AllowStrays lets processes of the run's process group outlive it (a
	// test that kills the run process leaves them for gc); otherwise they
	// are a leak: reported and killed.
	AllowStrays bool
}

// RunResult is what became of a stage1 process.
type RunResult struct {
	// ExitCode is what `rkt ...; echo $?` shows: the exit status, or
	// 128+signal if a signal killed the process (then Signal is set).
	ExitCode       int
	Signal         os.Signal
	Stdout, Stderr string // captured output, when not sent elsewhere
	Pid            int
	Duration       time.Duration
}

// Running is a pod run started with Start.
type Running struct {
	Cmd *exec.Cmd // the run entry point's process
	Pid int       // its PID, also its process group ID
	Pod *Pod
	c   *child
}

// Wait waits for the run entry point to exit and returns what became of
// it. It fails the test if the timeout killed it, and reports processes left
// in its process group (unless RunOpts.AllowStrays). Call it from the test
// goroutine; calling it again returns the same result.
func (r *Running) Wait() RunResult {
	r.c.t.Helper()
	return r.c.Wait()
}

// Output returns the output captured so far, for tests that watch a pod.
func (r *Running) Output() (stdout, stderr string) {
	return r.c.Output()
}

// the order rkt appends stage1 run flags in; the uuid always comes last.
var runFlagOrder = []string{
	"--debug", "--net", "--interactive", "--private-users", "--mds-token",
	"--local-config", "--hostname", "--dns-conf-mode",
	"--disable-capabilities-restriction", "--disable-paths", "--disable-seccomp",
	"--mutable", "--ipc",
}

// Run runs the pod as `rkt run` does once the pod is prepared, and waits
// for the run entry point to exit.
func (p *Pod) Run(t testing.TB, o RunOpts) RunResult {
	t.Helper()
	return p.Start(t, o).Wait()
}

// Start runs the pod without waiting: the pod moves to pods/run and is
// locked, stage1/rootfs/rkt/status is touched (rkt fails without it), each
// app rootfs gets etc/mtab, DNS files are written if asked for, and the run
// entry point starts with rkt's argv, cwd (the pod dir), environment and
// the lock descriptor. rkt execs the entry point, so its whole lifetime,
// exit code and lock are the run process's; the entry point runs in its own
// process group so that a timeout kills all it started.
func (p *Pod) Start(t testing.TB, o RunOpts) *Running {
	t.Helper()
	if p.state != "prepared" {
		t.Fatalf("rkt: pod %s is not prepared (it is in %q); a pod runs only once", p.UUID, p.state)
	}
	if o.Interactive && len(p.Apps) > 1 {
		t.Fatal("rkt: interactive option only supports one image")
	}
	lock, err := lockDir(p.Dir, true)
	if err != nil {
		t.Fatalf("rkt: cannot lock pod %s: %v", p.UUID, err)
	}
	defer lock.Close() // after Start, only the child's copy remains
	if err := p.move("prepared", "run"); err != nil {
		t.Fatalf("rkt: unable to transition to run: %v", err)
	}
	m, err := p.stage1Manifest()
	if err != nil {
		t.Fatalf("rkt: %v", err)
	}
	ep, ok := entryPoint(m, "run")
	if !ok {
		t.Fatalf("rkt: error determining 'run' entrypoint: no %srun annotation", annStage1)
	}
	version, err := interfaceVersion(m)
	if err != nil {
		t.Fatalf("rkt: %v", err)
	}
	rootfs := filepath.Join(p.Dir, "stage1", "rootfs")
	if p.overlay {
		if err := p.mountOverlays(); err != nil {
			t.Fatalf("rkt: error setting up stage1: %v", err)
		}
	}

	// In its default overlay mode rkt touches the status dir to make it
	// appear in the upper layer, and fails if the image lacks it.
	now := time.Now()
	if err := os.Chtimes(filepath.Join(rootfs, "rkt", "status"), now, now); err != nil {
		t.Fatalf("rkt: error setting up stage1: error touching status dir (the stage1 image must contain rkt/status/): %v", err)
	}
	for _, app := range p.Apps {
		if err := ensureMtab(filepath.Join(rootfs, "opt", "stage2", app, "rootfs")); err != nil {
			t.Fatalf("rkt: error setting up app image %s: %v", app, err)
		}
	}
	dns, err := parseDNS(o)
	if err != nil {
		t.Fatalf("rkt: error with dns flags: %v", err)
	}
	if err := dns.write(rootfs); err != nil {
		t.Fatalf("rkt: %v", err)
	}

	args, err := p.runArgs(t, o, m, version, dns)
	if err != nil {
		t.Fatalf("rkt: %v", err)
	}
	args = append([]string{filepath.Join(rootfs, ep)}, args...)

	fd := o.LockFD
	if fd == 0 {
		fd = defaultLockFD
	}
	if fd < 3 {
		t.Fatalf("RunOpts.LockFD %d would replace a standard descriptor", fd)
	}
	extra := make([]*os.File, fd-3+1)
	extra[fd-3] = lock
	env := append(os.Environ(), o.Env...)
	env = append(env, "RKT_LOCK_FD="+strconv.Itoa(fd), "RKT_SELINUX_CONTEXT=", "RKT_SELINUX_MOUNT_CONTEXT=")
	cmd := &exec.Cmd{Path: args[0], Args: args, Dir: p.Dir, Env: env, ExtraFiles: extra}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultRunTimeout
	}
	c := newChild(t, "pod "+p.UUID+" run", cmd, timeout, o.AllowStrays)
	cmd.Stdin = o.Stdin
	cmd.Stdout = c.outOr(o.Stdout)
	cmd.Stderr = c.errOr(o.Stderr)
	if err := c.start(); err != nil {
		t.Fatalf("rkt: error execing init: %v", err)
	}
	return &Running{Cmd: c.Cmd, Pid: c.Pid, Pod: p, c: c}
}

// runArgs builds the run entry point's flags in rkt's order, dropping those
// the stage1's interface version does not know, as rkt does.
func (p *Pod) runArgs(t testing.TB, o RunOpts, m *schema.ImageManifest, version int, dns *dnsConf) ([]string, error) {
	t.Helper()
	var flags []string
	add := func(cond bool, f string) {
		if cond {
			flags = append(flags, f)
		}
	}
	net := o.Net
	if net == "" {
		net = "default"
	}
	localConfig := o.LocalConfig
	if localConfig == "" {
		localConfig = DefaultLocalConfig
	}
	add(o.Debug, "--debug")
	add(true, "--net="+net)
	add(o.Interactive, "--interactive")
	add(o.MDSToken != "", "--mds-token="+o.MDSToken)
	add(!o.RunPrepared, "--local-config="+localConfig)
	add(o.Hostname != "", "--hostname="+o.Hostname)
	add(dns.resolvMode != "default" || dns.hostsMode != "default",
		fmt.Sprintf("--dns-conf-mode=resolv=%s,hosts=%s", dns.resolvMode, dns.hostsMode))
	add(o.DisableCapabilities, "--disable-capabilities-restriction")
	add(o.DisablePaths, "--disable-paths")
	add(o.DisableSeccomp, "--disable-seccomp")
	add(o.IPC != "", "--ipc="+o.IPC)
	flags = append(flags, o.Extra...)

	rank := map[string]int{}
	for i, f := range runFlagOrder {
		rank[f] = i
	}
	seen := map[string]bool{}
	var kept []string
	for _, f := range flags {
		name, _, _ := strings.Cut(f, "=")
		if _, ok := rank[name]; !ok {
			return nil, fmt.Errorf("rkt never passes %q to a stage1's run entry point", f)
		}
		if seen[name] {
			return nil, fmt.Errorf("%s given twice (RunOpts field and Extra?)", name)
		}
		seen[name] = true
		switch {
		case name == "--hostname" && version <= 1,
			name == "--dns-conf-mode" && version <= 3,
			name == "--ipc" && version < 6,
			strings.HasPrefix(name, "--disable-") && version <= 2:
			t.Logf("rkt: warning: %s is not supported by stage1 interface version %d; dropped", name, version)
			continue
		case name == "--mutable":
			for _, ep := range []string{"app/add", "app/rm", "app/start", "app/stop"} {
				if _, ok := entryPoint(m, ep); !ok {
					return nil, errors.New("stage1 does not support mutable pods")
				}
			}
		}
		kept = append(kept, f)
	}
	sort.SliceStable(kept, func(i, j int) bool {
		a, _, _ := strings.Cut(kept[i], "=")
		b, _, _ := strings.Cut(kept[j], "=")
		return rank[a] < rank[b]
	})
	return append(kept, p.UUID), nil
}

// ensureMtab links etc/mtab to /proc/self/mounts in an app rootfs that has
// an etc/ but no mtab, as rkt does before running a pod.
func ensureMtab(rootfs string) error {
	fi, err := os.Stat(filepath.Join(rootfs, "etc"))
	if errors.Is(err, os.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil
	}
	if err != nil {
		return err
	}
	mtab := filepath.Join(rootfs, "etc", "mtab")
	if _, err := os.Lstat(mtab); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Symlink("../proc/self/mounts", mtab)
}

// dnsConf is rkt's reading of the --dns* and --hosts-entry flags.
type dnsConf struct {
	resolvMode, hostsMode string // default, host, none or stage0
	nameservers           []string
	search, options       []string
	domain                string
	hosts                 []string // "IP name..." lines, in flag order
}

func parseDNS(o RunOpts) (*dnsConf, error) {
	d := &dnsConf{resolvMode: "default", hostsMode: "default", search: o.DNSSearch, options: o.DNSOpt, domain: o.DNSDomain}
	for _, v := range o.DNS {
		if v == "host" || v == "none" {
			if len(o.DNS) > 1 {
				return nil, fmt.Errorf("no other --dns options allowed when --dns=%s is passed", v)
			}
			d.resolvMode = v
			break
		}
		for _, ip := range strings.Split(v, ",") {
			if net.ParseIP(ip) == nil {
				return nil, fmt.Errorf("invalid IP passed to --dns: %s", ip)
			}
			d.nameservers = append(d.nameservers, ip)
		}
	}
	if len(d.nameservers)+len(d.search)+len(d.options) > 0 || d.domain != "" {
		if d.resolvMode == "default" {
			d.resolvMode = "stage0"
		}
		if d.resolvMode != "stage0" {
			return nil, fmt.Errorf("cannot call --dns-opt, --dns-search, or --dns-domain with --dns=%v", d.resolvMode)
		}
	}
	byIP := map[string][]string{}
	var ips []string
	for _, e := range o.HostsEntries {
		if e == "host" {
			if len(o.HostsEntries) > 1 {
				return nil, errors.New("cannot pass --hosts-entry=host with multiple hosts-entries")
			}
			d.hostsMode = "host"
			break
		}
		for _, kv := range strings.Split(e, ",") {
			ip, name, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("did not understand --hosts-entry %s", kv)
			}
			if net.ParseIP(ip) == nil {
				return nil, fmt.Errorf("invalid IP passed to --hosts-entry: %s", ip)
			}
			if _, ok := byIP[ip]; !ok {
				ips = append(ips, ip)
			}
			byIP[ip] = append(byIP[ip], name)
		}
	}
	for _, ip := range ips {
		d.hosts = append(d.hosts, ip+" "+strings.Join(byIP[ip], " "))
	}
	if len(d.hosts) > 0 {
		d.hostsMode = "stage0"
	}
	return d, nil
}

// write creates etc/rkt-resolv.conf and etc/rkt-hosts in the stage1 rootfs
// when the flags made stage0 responsible for them, in rkt's format.
func (d *dnsConf) write(rootfs string) error {
	etc := filepath.Join(rootfs, "etc")
	if d.resolvMode == "stage0" || d.hostsMode == "stage0" {
		if err := os.MkdirAll(etc, podDirPerm); err != nil {
			return err
		}
	}
	if d.resolvMode == "stage0" {
		var b strings.Builder
		b.WriteString("# Generated by rkt run\n\n")
		if len(d.search) > 0 {
			fmt.Fprintf(&b, "search %s\n", strings.Join(d.search, " "))
		}
		for _, ns := range d.nameservers {
			fmt.Fprintf(&b, "nameserver %s\n", ns)
		}
		if len(d.options) > 0 {
			fmt.Fprintf(&b, "options %s\n", strings.Join(d.options, " "))
		}
		if d.domain != "" {
			fmt.Fprintf(&b, "domain %s\n", d.domain)
		}
		if err := os.WriteFile(filepath.Join(etc, "rkt-resolv.conf"), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("error writing etc/rkt-resolv.conf: %w", err)
		}
	}
	if d.hostsMode == "stage0" {
		text, err := os.ReadFile(filepath.Join(etc, "hosts-fallback"))
		if err != nil {
			text = []byte("#created by rkt stage0\n127.0.0.1 localhost localhost.localdomain\n")
		}
		s := string(text) + "\n\n# Added by rkt run --hosts-entry\n"
		for _, l := range d.hosts {
			s += l + "\n"
		}
		if err := os.WriteFile(filepath.Join(etc, "rkt-hosts"), []byte(s), 0o644); err != nil {
			return fmt.Errorf("failed to write etc/rkt-hosts: %w", err)
		}
	}
	return nil
}
