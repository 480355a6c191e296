package guest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/appc/spec/schema/types"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/agentproto"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// Agent tuning.
const (
	// defaultPath is appc's PATH, for finding a command when the app's
	// environment has none.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// outputGrace: once a command has ended, its output is still read as
	// long as each read finds data within this time (output a lingering
	// background process keeps writing is cut at the first pause).
	outputGrace = 250 * time.Millisecond
	// shutdownGrace bounds how long the agent, told to stop, waits for
	// running requests (their commands are hung up) to send their end.
	shutdownGrace = 2 * time.Second
	// killGrace is how long, after killing what ignored the hang-up,
	// the agent waits for those commands' ends to go out.
	killGrace = time.Second
)

// agent serves the host's requests (enter, stop) over a yamux session on
// the agent port. It runs inside the I/O forwarder's process, not as a
// service of its own: a second Go program in every guest cost about 1 MiB
// of guest memory and ~0.1 s of emulated start.
type agent struct {
	sess     *yamux.Session
	h        *AgentHandler
	inflight sync.WaitGroup
}

// startAgent opens the agent port, serves it from goroutines and tells the
// host "agent-ready": the guest kernel drops what arrives on a port nobody
// holds open, so the host speaks only after that.
func startAgent() (*agent, error) {
	port, err := openPort(contract.AgentPort, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	a, err := serveAgent(port, NewAgentHandler(contract.PodMount))
	if err != nil {
		port.Close()
		return nil, err
	}
	if err := Send(contract.EventsPort, contract.Event{Kind: contract.EventAgentReady}.String()); err != nil {
		a.sess.Close()
		return nil, err
	}
	return a, nil
}

// serveAgent serves h's requests on conn, the guest's end of the session.
func serveAgent(conn io.ReadWriteCloser, h *AgentHandler) (*agent, error) {
	sess, err := yamux.Server(conn, agentproto.SessionConfig())
	if err != nil {
		return nil, fmt.Errorf("agent session: %w", err)
	}
	a := &agent{sess: sess, h: h}
	go a.serve()
	return a, nil
}

// serve accepts the host's streams, one request each, until the session
// ends. The forwarder goes on without it: the apps' output matters more
// than enter.
func (a *agent) serve() {
	for {
		c, err := a.sess.Accept()
		if err != nil {
			if errors.Is(err, yamux.ErrSessionShutdown) {
				fmt.Fprintln(os.Stderr, "stage1-io: agent session ended: the host closed the agent port")
			} else {
				fmt.Fprintf(os.Stderr, "stage1-io: agent session: %v\n", err)
			}
			return
		}
		a.inflight.Add(1)
		go func() {
			defer a.inflight.Done()
			agentproto.ServeConn(c, a.h)
		}()
	}
}

// stop is for the VM's power-off: commands still running are hung up
// (systemd has sent them SIGTERM too, as they live in this service's
// cgroup; an interactive shell ignores it), then their exit statuses and
// pending replies go out, for at most shutdownGrace; what still runs
// then is killed, so a command ignoring both signals cannot hold the
// power-off for the forwarder's whole stop timeout.
func (a *agent) stop() {
	a.h.eachRunning((*agentProcess).Hangup)
	done := make(chan struct{})
	go func() { a.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		a.h.eachRunning((*agentProcess).kill)
		// Their ends, too, go out if they can in a moment.
		select {
		case <-done:
		case <-time.After(killGrace):
		}
	}
	a.sess.Close()
}

// AgentHandler carries out the agent's requests in the guest.
type AgentHandler struct {
	pod string // the pod mount, /pod in the guest

	mu      sync.Mutex
	running map[*agentProcess]struct{}
}

// NewAgentHandler serves the pod mounted at pod.
func NewAgentHandler(pod string) *AgentHandler {
	return &AgentHandler{pod: pod, running: map[*agentProcess]struct{}{}}
}

// Stop queues the VM's power-off.
func (h *AgentHandler) Stop() error {
	out, err := exec.Command(contract.Systemctl, "poweroff", "--no-block").CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl poweroff: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// eachRunning calls f for every running command.
func (h *AgentHandler) eachRunning(f func(*agentProcess)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := range h.running {
		f(p)
	}
}

func noApp(app string) error {
	return &agentproto.RemoteError{Msg: fmt.Sprintf("no app named %q in this pod", app)}
}

// Exec starts a command in an app as rkt enter does: as root, in the app's
// root file system (as the app sees it, with /proc and /dev), with the
// app's environment, in /.
func (h *AgentHandler) Exec(req *agentproto.ExecRequest) (agentproto.Process, error) {
	if _, err := types.NewACName(req.App); err != nil {
		return nil, noApp(req.App)
	}
	rootfs := filepath.Join(h.pod, contract.AppRootfsRel(req.App))
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return nil, noApp(req.App)
	}
	envData, err := os.ReadFile(filepath.Join(h.pod, contract.ShareConfig, contract.EnvDir, req.App))
	if errors.Is(err, os.ErrNotExist) {
		return nil, noApp(req.App)
	} else if err != nil {
		return nil, fmt.Errorf("read the environment of app %s: %w", req.App, err)
	}
	env, err := contract.DecodeEnv(envData)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", req.App, err)
	}
	if req.TTY && req.Term != "" {
		env = setEnv(env, "TERM", req.Term)
	}

	root, err := openAppRoot(rootfs)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	exe, err := lookPathIn(root, req.Argv[0], envValue(env, "PATH", defaultPath))
	if err != nil {
		return nil, err
	}

	cmd := &exec.Cmd{
		Path: exe,
		Args: req.Argv,
		Env:  env,
		Dir:  "/",
		// The child chroots before it closes our descriptors: through
		// /proc/self/fd it reaches the root we opened, which stays
		// valid even if the process we found it through ends.
		SysProcAttr: &syscall.SysProcAttr{Chroot: "/proc/self/fd/" + strconv.Itoa(int(root.Fd()))},
	}
	defaultSignalsForCommands()
	p := &agentProcess{done: make(chan struct{})}
	if req.TTY {
		err = p.startTTY(cmd, req.Size)
	} else {
		err = p.startPipes(cmd)
	}
	if err != nil {
		status := 126
		if errors.Is(err, unix.ENOENT) {
			status = 127
		}
		return nil, &agentproto.RemoteError{Msg: fmt.Sprintf("exec: %s: %v", req.Argv[0], unwrapErrno(err)), Status: status}
	}
	h.mu.Lock()
	h.running[p] = struct{}{}
	h.mu.Unlock()
	go func() {
		p.wait()
		h.mu.Lock()
		delete(h.running, p)
		h.mu.Unlock()
	}()
	return p, nil
}

func unwrapErrno(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

func envValue(env []string, name, def string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return def
}

func setEnv(env []string, name, value string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// openAppRoot opens the app's root directory as the app sees it. systemd
// runs an app with RootDirectory= in a mount namespace of its own, where
// /proc, /dev and /sys are mounted in the rootfs; the guest's own view of
// the rootfs has none of them. So the root of a process of the app (same
// directory, another mount namespace) is preferred to the bare directory,
// which is used when no process of the app is left.
func openAppRoot(rootfs string) (*os.File, error) {
	var want unix.Stat_t
	if err := unix.Stat(rootfs, &want); err != nil {
		return nil, fmt.Errorf("stat %s: %w", rootfs, err)
	}
	var ownNS unix.Stat_t
	unix.Stat("/proc/self/ns/mnt", &ownNS)
	entries, _ := os.ReadDir("/proc")
	var sameNS []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		var st, ns unix.Stat_t
		if unix.Stat(dir+"/root", &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino {
			continue
		}
		if unix.Stat(dir+"/ns/mnt", &ns) == nil && ns.Ino == ownNS.Ino {
			sameNS = append(sameNS, dir)
			continue
		}
		if f, err := openDir(dir + "/root"); err == nil {
			return f, nil
		}
	}
	for _, dir := range sameNS {
		if f, err := openDir(dir + "/root"); err == nil {
			return f, nil
		}
	}
	return openDir(rootfs)
}

func openDir(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// lookPathIn finds a command as a shell in root would: a name with a slash
// is a path (from /, the command's working directory), others are looked
// up in pathEnv. Symbolic links resolve inside root.
func lookPathIn(root *os.File, name, pathEnv string) (string, error) {
	notFound := &agentproto.RemoteError{Msg: fmt.Sprintf("exec: %s: not found", name), Status: 127}
	var candidates []string
	if strings.Contains(name, "/") {
		candidates = []string{path.Join("/", name)}
	} else {
		for _, dir := range filepath.SplitList(pathEnv) {
			candidates = append(candidates, path.Join("/", dir, name))
		}
	}
	var denied error
	for _, c := range candidates {
		fd, err := unix.Openat2(int(root.Fd()), strings.TrimPrefix(c, "/"), &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT,
		})
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err != nil {
			continue
		}
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			denied = &agentproto.RemoteError{Msg: fmt.Sprintf("exec: %s: is a directory", name), Status: 126}
		case st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0:
			denied = &agentproto.RemoteError{Msg: fmt.Sprintf("exec: %s: permission denied", name), Status: 126}
		default:
			return c, nil
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", notFound
}

// agentProcess is a command started for an exec request.
type agentProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.Reader
	stderr io.Reader
	master *os.File // TTY only
	files  []*os.File

	done   chan struct{} // closed once the command ended
	status int
	err    error
	close  sync.Once
}

func (p *agentProcess) startPipes(cmd *exec.Cmd) error {
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		for _, f := range []*os.File{inR, inW, outR, outW} {
			f.Close()
		}
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	// Its own process group, so a hang-up reaches what it started too.
	cmd.SysProcAttr.Setpgid = true
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return err
	}
	p.cmd = cmd
	p.stdin = inW
	p.files = []*os.File{inW, outR, errR}
	p.stdout = &drainReader{f: outR, done: p.done}
	p.stderr = &drainReader{f: errR, done: p.done}
	go p.reap()
	return nil
}

func (p *agentProcess) startTTY(cmd *exec.Cmd, size agentproto.Size) error {
	master, tty, err := openPTY(size)
	if err != nil {
		return fmt.Errorf("allocate a terminal: %w", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// A session of its own with the terminal as its controlling one:
	// ^C typed by the user becomes SIGINT, closing the master SIGHUP.
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0
	err = cmd.Start()
	// Only the command holds the terminal now: the master reads EIO
	// once every process of the session has let go of it.
	tty.Close()
	if err != nil {
		master.Close()
		return err
	}
	p.cmd = cmd
	p.master = master
	p.stdin = nopCloser{master}
	p.files = []*os.File{master}
	p.stdout = &drainReader{f: master, done: p.done}
	go p.reap()
	return nil
}

// openPTY allocates a pseudo-terminal of the given size. The master is
// non-blocking, so Go's poller serves it and read deadlines work on it (a
// master put in blocking mode, as os.File.Fd does, would ignore them).
func openPTY(size agentproto.Size) (master, tty *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0) // unlock
	}
	if err == nil {
		err = unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols})
	}
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	tty, err = os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), tty, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// reap waits for the command, records its status and stops the output
// readers from waiting for output that may never come.
func (p *agentProcess) reap() {
	err := p.cmd.Wait()
	var ws syscall.WaitStatus
	ok := false
	if p.cmd.ProcessState != nil {
		ws, ok = p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	switch {
	case ok && ws.Signaled():
		p.status = 128 + int(ws.Signal())
	case ok:
		p.status = ws.ExitStatus()
	default:
		p.err = err
	}
	// Interrupt reads blocked on an output nobody else may ever write or
	// close (a background process holding it): drainReader then reads
	// what is left.
	now := time.Now()
	for _, f := range p.files {
		f.SetReadDeadline(now)
	}
	if p.master == nil {
		p.stdin.Close()
	}
	close(p.done)
}

func (p *agentProcess) Stdin() io.WriteCloser { return p.stdin }
func (p *agentProcess) Stdout() io.Reader     { return p.stdout }
func (p *agentProcess) Stderr() io.Reader     { return p.stderr }

func (p *agentProcess) Resize(s agentproto.Size) error {
	if p.master == nil || s.Rows == 0 || s.Cols == 0 {
		return nil
	}
	// The kernel sends SIGWINCH to the terminal's foreground group.
	rc, err := p.master.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: s.Rows, Col: s.Cols})
	}); err != nil {
		return err
	}
	return ioctlErr
}

func (p *agentProcess) wait() { <-p.done }

// ended says whether the command has ended and been reaped.
func (p *agentProcess) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait returns the status once the command ended and releases its files;
// the server calls it after reading the output to its end.
func (p *agentProcess) Wait() (int, error) {
	<-p.done
	p.close.Do(func() {
		for _, f := range p.files {
			f.Close()
		}
	})
	return p.status, p.err
}

// Hangup sends SIGHUP (and SIGCONT, as the kernel does when a terminal
// hangs up) to the command's process group while the command runs.
func (p *agentProcess) Hangup() { p.signalGroup(unix.SIGHUP, unix.SIGCONT) }

// kill sends SIGKILL to the command's process group while it runs.
func (p *agentProcess) kill() { p.signalGroup(unix.SIGKILL) }

// signalGroup sends sigs, in order, to the command's process group, unless
// the command has ended (its group may be gone, its ID reused).
func (p *agentProcess) signalGroup(sigs ...unix.Signal) {
	if p.ended() {
		return
	}
	for _, sig := range sigs {
		unix.Kill(-p.cmd.Process.Pid, sig)
	}
}

// drainReader reads a command's output. Before the command ends, reads
// wait as long as needed; once it ended, a read finding nothing within
// outputGrace is the end (EOF), as is a terminal's EIO (every process let
// go of the terminal).
type drainReader struct {
	f    *os.File
	done <-chan struct{}
}

func (r *drainReader) Read(b []byte) (int, error) {
	n, err := r.f.Read(b)
	for n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		// Only reap sets a deadline before the command ended, right
		// before closing done.
		<-r.done
		r.f.SetReadDeadline(time.Now().Add(outputGrace))
		n, err = r.f.Read(b)
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, io.EOF
		}
	}
	if errors.Is(err, unix.EIO) {
		return n, io.EOF
	}
	return n, err
}

// hangupCaught makes this process catch SIGHUP, once.
var hangupCaught sync.Once

// defaultSignalsForCommands makes sure the commands the agent starts get
// SIGHUP's default action, which the agent relies on to end them when
// their client goes away: a signal ignored by a process stays ignored in
// what it executes (started under nohup, say), and a shell cannot even trap
// one ignored at its start. A caught signal reverts to its default at
// exec, so the agent catches SIGHUP itself (and drops it: a hang-up of the
// agent means nothing to it).
func defaultSignalsForCommands() {
	hangupCaught.Do(func() {
		signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	})
}
