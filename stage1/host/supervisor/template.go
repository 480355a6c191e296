package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hypervisor"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/template"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/jailplan"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
	"github.com/stage1-kvm/stage1-kvm/stage1/unixsock"
)

// stateTimeout bounds saving or loading a template's device state (tens
// of milliseconds when healthy).
const stateTimeout = 30 * time.Second

// templateVMName names a QEMU making a template (-name).
const templateVMName = "stage1-kvm-template"

// ErrNotTemplatable: this VM cannot be saved or restored.
var ErrNotTemplatable = errors.New("no template for this VM")

// templateShape is everything a template of cfg's VM depends on: QEMU's
// command line as QEMU sees it in its jail (so the same for every pod of
// the shape: the pod's own paths, name and MACs are not in it) and
// contents, the digests of the files the VM is made of
// (contract.VMContents). It is pure.
func templateShape(cfg qemu.Config, contents []byte) ([]string, error) {
	switch {
	case !cfg.Binary.Bundled:
		return nil, fmt.Errorf("%w: a host QEMU lacks our patches", ErrNotTemplatable)
	case cfg.UsesVirtiofs():
		return nil, fmt.Errorf("%w: virtiofs (vhost-user) cannot be saved", ErrNotTemplatable)
	case len(contents) == 0:
		return nil, fmt.Errorf("%w: the stage1 lists no digests of its VM's files", ErrNotTemplatable)
	}
	c := cfg
	c.Name, c.RAMFile, c.RAMShared, c.Incoming = "", "/template/ram", false, false
	_, jailed, err := jailplan.ForQEMU(c, "/jail")
	if err != nil {
		return nil, err
	}
	return []string{strings.Join(qemu.Argv(jailed), "\x00"), string(contents)}, nil
}

// readVMContents reads the stage1's contract.VMContents (bounded). A
// stage1 without one has no templates.
func readVMContents(stage1Rootfs string) ([]byte, error) {
	f, err := os.Open(filepath.Join(stage1Rootfs, contract.VMContents))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotTemplatable, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, contract.MaxVMContents+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotTemplatable, err)
	}
	if len(b) > contract.MaxVMContents {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrNotTemplatable, contract.VMContents, contract.MaxVMContents)
	}
	return b, nil
}

// startFromTemplate starts the pod's VM (cfg) from the template of its
// shape, making the template first if there is none. It returns nil when
// the pod must boot cold: templates off, a VM that cannot have one, a
// template another pod is making right now, or any failure (with a
// one-line notice: a template never fails a pod).
func (s *session) startFromTemplate(cfg qemu.Config) *hypervisor.VM {
	if !s.o.Settings.Template {
		return nil
	}
	contents, err := readVMContents(s.pod.Stage1Rootfs)
	if err != nil {
		s.logf("booting cold: %v", err)
		return nil
	}
	shape, err := templateShape(cfg, contents)
	if err != nil {
		s.logf("booting cold: %v", err)
		return nil
	}
	key := template.Key(shape...)
	store := template.Store{Dir: s.o.Settings.TemplateDir}
	from, makeDur := "template", time.Duration(0)
	looked := time.Now()
	t, err := store.LookupForStart(key)
	check := time.Since(looked)
	if err != nil && s.memoryShort != "" {
		// A making VM's RAM is a shared file mapping: short of memory,
		// the kernel writes it back and reads it again, for minutes,
		// where a cold VM runs out of memory at once.
		s.warnf("booting cold: not making a template: %s", s.memoryShort)
		return nil
	}
	if err != nil && !errors.Is(err, template.ErrNotFound) {
		s.warnf("%v: making it again", err)
	}
	if err != nil {
		from = "new-template"
		made := time.Now()
		t, err = store.Make(key, func(dir string) error { return s.makeTemplate(cfg, dir) })
		makeDur = time.Since(made)
		if errors.Is(err, template.ErrBusy) {
			s.logf("booting cold: %v", err)
			return nil
		} else if err != nil {
			s.warnf("booting cold: making a template failed: %v", err)
			return nil
		}
		s.logf("made template %s in %d ms", key, t.Meta.MakeMs)
	}
	s.timer.markQEMU()
	vm, badImage, err := s.restore(cfg, t, checkTemplate(t, from == "new-template"))
	if badImage != nil {
		// The clone runs without it; the next pod makes a new template.
		s.warnf("%v: dropping the template", badImage)
		store.Drop(key)
	}
	if err != nil {
		s.warnf("booting cold: starting from template %s failed: %v", key, err)
		if errors.Is(err, hypervisor.ErrState) || errors.Is(err, template.ErrCorrupt) {
			// QEMU refused the state, or a file changed: never
			// again (the next pod makes it anew).
			store.Drop(key)
		}
		return nil
	}
	s.timer.markStart(from, check, makeDur, time.Since(s.timer.qemu))
	s.logTemplateBoot(t)
	return vm
}

// templateChecks are the hashes of a template's files, run in the
// background while the clone's QEMU starts (one goroutine, in the order
// the restore needs them): each channel gives its file's check before
// QEMU reads it (state), is given it (image) or runs it (ram).
type templateChecks struct {
	state, image, ram chan error
}

// checkTemplate starts checking t's files; those of a template Make has
// just recorded (justMade) are not hashed again.
func checkTemplate(t template.Template, justMade bool) templateChecks {
	c := templateChecks{state: make(chan error, 1), image: make(chan error, 1), ram: make(chan error, 1)}
	if justMade {
		c.state <- nil
		c.image <- nil
		c.ram <- nil
		return c
	}
	go func() {
		c.state <- t.CheckState()
		c.image <- t.CheckTranslations()
		c.ram <- t.CheckRAM()
	}()
	return c
}

// logTemplateBoot shows, with --debug, what the guest printed up to the
// template point when t was made (bounded: our kernel and pre-init
// wrote it): a clone's console starts there.
func (s *session) logTemplateBoot(t template.Template) {
	if s.o.Flags.Debug {
		b, _ := readTail(filepath.Join(t.Dir, template.ConsoleFile), consoleTail)
		s.logf("started from template %s; its boot, when it was made:\n%s", t.Meta.Key, b)
	}
}

// restore starts a clone of t as the pod's VM: QEMU maps t's RAM file
// copy-on-write and loads its device state, and the guest resumes at the
// template point, where it reads this pod's configuration. checks hash
// t's files meanwhile: a changed state or RAM file fails the restore
// (template.ErrCorrupt), a changed image of translated code is not
// loaded (badImage; the clone runs without it). On failure nothing of
// the clone is left (QEMU killed, its port connections dropped).
func (s *session) restore(cfg qemu.Config, t template.Template, checks templateChecks) (vm *hypervisor.VM, badImage, err error) {
	c := cfg
	c.RAMFile, c.Incoming = t.RAM(), true
	state, err := os.Open(t.State())
	if err != nil {
		return nil, nil, err
	}
	defer state.Close()
	// QEMU's own messages wait until the clone runs: if it fails, they
	// are part of the one-line notice, not lines of their own.
	stderr := &heldWriter{w: s.o.Stderr}
	vm, err = hypervisor.Start(c, filepath.Join(s.o.PodDir, contract.JailDir), stderr)
	if err != nil {
		return nil, nil, err
	}
	// QEMU maps the RAM file at its start but runs nothing from it
	// before Resume; it parses the state in LoadState.
	if err = <-checks.state; err == nil {
		err = vm.LoadState(state, stateTimeout)
	}
	if err == nil {
		if badImage = <-checks.image; badImage == nil && t.Translations() != "" {
			s.loadTranslations(vm, t)
		}
		if err = <-checks.ram; err == nil {
			err = s.greetClone()
		}
		if err == nil {
			err = vm.Resume(stateTimeout)
		}
	}
	if err != nil {
		vm.Kill()
		if s.host.greeted != nil {
			s.host.greeted.Close()
			s.host.greeted = nil
		}
		s.dropPendingConns()
		if msg := stderr.held(); msg != "" {
			err = fmt.Errorf("%w (qemu: %s)", err, msg)
		}
		return nil, badImage, err
	}
	stderr.release()
	return vm, badImage, nil
}

// loadTranslations gives the clone's QEMU the code its template
// translated (its hash checked meanwhile, and QEMU checks it again); a
// clone without it only translates more.
func (s *session) loadTranslations(vm *hypervisor.VM, t template.Template) {
	start := time.Now()
	f, err := os.Open(t.Translations())
	if err == nil {
		err = vm.LoadTranslations(f, stateTimeout)
		f.Close()
	}
	if err != nil {
		s.logf("clone without its template's translated code: %v", err)
		return
	}
	s.timer.markTranslations(time.Since(start))
}

// heldWriter keeps what is written (at most maxHeld bytes) until release,
// then writes it and everything after to w.
type heldWriter struct {
	mu       sync.Mutex
	w        io.Writer
	buf      bytes.Buffer
	released bool
}

const maxHeld = 4096

func (h *heldWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return h.w.Write(p)
	}
	h.buf.Write(p[:min(len(p), max(0, maxHeld-h.buf.Len()))])
	return len(p), nil
}

func (h *heldWriter) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.w.Write(h.buf.Bytes())
	h.released = true
}

// held is what was kept, on one line.
func (h *heldWriter) held() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.TrimSuffix(strings.Join(strings.Fields(strings.ReplaceAll(h.buf.String(), "\n", "; ")), " "), ";")
}

// greetAcceptTimeout bounds the wait for a clone's QEMU's connection to
// the events port (it connects as it starts, before its state loads).
const greetAcceptTimeout = time.Second

// greetClone sends a loaded clone its configuration before it resumes:
// its guest, past the template point, waits for nothing but this. (The
// event loop writes a cold guest's when it says template-point, which a
// clone never says again: a clone that cannot be greeted is not resumed.)
func (s *session) greetClone() error {
	ln := s.host.listeners[contract.EventsPort]
	if ln == nil {
		return fmt.Errorf("greet the clone: no events port")
	}
	ln.SetDeadline(time.Now().Add(greetAcceptTimeout))
	conn, err := ln.Accept()
	ln.SetDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("greet the clone: %w", err)
	}
	b, err := s.podConfig()
	if err == nil {
		_, err = conn.Write(b)
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("greet the clone: %w", err)
	}
	s.host.greeted = conn
	return nil
}

// dropPendingConns closes the connections a failed clone's QEMU made to
// the pod's ports, so the VM that follows is the one run talks to.
func (s *session) dropPendingConns() {
	for _, ln := range s.host.listeners {
		// Not now: a deadline already past fails Accept before it
		// looks for a pending connection.
		ln.SetDeadline(time.Now().Add(10 * time.Millisecond))
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			c.Close()
		}
		ln.SetDeadline(time.Time{})
	}
}

// makeTemplate boots the VM of cfg's shape to the template point and
// saves it in dir: its RAM file (RAMFile, written through by QEMU) and
// its device state (StateFile). It uses the pod's taps (a template needs
// the same devices, and the guest sends nothing before its
// configuration) but its own ports, an empty directory for each share and
// its own jail: nothing of the pod enters a template.
func (s *session) makeTemplate(cfg qemu.Config, dir string) error {
	socks := filepath.Join(s.o.PodDir, contract.TemplateSocketsDir)
	if err := os.Mkdir(socks, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(socks)
	m, listeners, err := templateVM(cfg, dir, socks)
	for _, ln := range listeners {
		defer ln.Close()
	}
	if err != nil {
		return err
	}
	vm, err := hypervisor.Start(m, filepath.Join(dir, "jail"), s.o.Stderr)
	if err != nil {
		return err
	}
	defer vm.Kill()
	// A QEMU that dies before the guest gets there (killed for lack of
	// memory, say) ends the wait at once, not at the boot's deadline.
	waiting := make(chan struct{})
	go func() {
		select {
		case <-vm.Done():
			listeners[contract.EventsPort].Close()
		case <-waiting:
		}
	}()
	conn, err := awaitTemplatePoint(listeners[contract.EventsPort], s.o.Settings.BootTimeoutFor(cfg.Accel), func() {
		if cfg.Accel == qemu.TCG {
			if err := vm.FlushTranslations(stateTimeout); err != nil {
				s.logf("template VM: %v", err)
			}
		}
	})
	close(waiting)
	if err != nil {
		select {
		case <-vm.Done():
			// QEMU's own end says more; a QEMU that exited 0 (the
			// guest powered off or rebooted) leaves the wait's error.
			if werr := vm.Wait(); werr != nil {
				err = werr
			}
		default:
		}
		return fmt.Errorf("template VM: %w (console: %s)", err, templateConsole(m.Console))
	}
	// Closed only once QEMU is gone: the guest would see the host leave
	// the port (its read would end) and the template would keep that.
	defer conn.Close()
	state, err := os.OpenFile(filepath.Join(dir, template.StateFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer state.Close()
	if err := vm.SaveState(state, stateTimeout); err != nil {
		return err
	}
	if cfg.Accel == qemu.TCG {
		s.saveTranslations(vm, dir)
	}
	if err := vm.Kill(); err != nil {
		return err
	}
	// Only the RAM and state files stay, and the boot's console log
	// (--debug shows it: a clone's console starts at the template point).
	for _, f := range append([]string{m.QMPSocket, filepath.Join(dir, "jail")}, sharePaths(m.Shares)...) {
		os.Remove(f)
	}
	return nil
}

// saveTranslations leaves in dir an image of the code the template's QEMU
// translated up to the template point (template.TranslationsFile), for
// its clones: each resumes there with the same guest memory, and would
// otherwise translate it all again. Without one, clones still work: a
// failure is only noted.
func (s *session) saveTranslations(vm *hypervisor.VM, dir string) {
	path := filepath.Join(dir, template.TranslationsFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		err = vm.SaveTranslations(f, stateTimeout)
		f.Close()
	}
	if err != nil {
		os.Remove(path)
		s.logf("template without translated code: %v", err)
	}
}

// templateVM prepares, in dir, the VM that makes the template of cfg's
// shape: its RAM file, an empty directory per share; and in socks, its
// QMP socket and a listening socket per port (returned by port name, to
// be closed by the caller).
func templateVM(cfg qemu.Config, dir, socks string) (qemu.Config, map[string]net.Listener, error) {
	m := cfg
	m.Name, m.RAMFile, m.RAMShared = templateVMName, filepath.Join(dir, template.RAMFile), true
	m.Console, m.ConsoleAppend = filepath.Join(dir, template.ConsoleFile), false
	// The guest warms up what its clones will run (guest.warmUp).
	m.Cmdline = append(slices.Clone(cfg.Cmdline), contract.MakingTemplateParam+"=1")
	// Short names: a socket's path has at most 107 bytes.
	m.QMPSocket = filepath.Join(socks, "q")
	listeners := map[string]net.Listener{}
	ram, err := os.OpenFile(m.RAMFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return m, listeners, err
	}
	err = ram.Truncate(int64(cfg.MemoryMiB) << 20)
	ram.Close()
	if err != nil {
		return m, listeners, err
	}
	m.Shares = nil
	for i, sh := range cfg.Shares {
		sh.Path = filepath.Join(dir, "share"+strconv.Itoa(i))
		if err := os.Mkdir(sh.Path, 0o700); err != nil {
			return m, listeners, err
		}
		m.Shares = append(m.Shares, sh)
	}
	m.Ports = nil
	for i, p := range cfg.Ports {
		p.Socket = filepath.Join(socks, "p"+strconv.Itoa(i))
		ln, err := unixsock.Listen(p.Socket)
		if err != nil {
			return m, listeners, err
		}
		listeners[p.Name] = ln
		m.Ports = append(m.Ports, p)
	}
	if listeners[contract.EventsPort] == nil {
		return m, listeners, fmt.Errorf("%w: no events port", ErrNotTemplatable)
	}
	return m, listeners, nil
}

func sharePaths(shares []qemu.Share) []string {
	var out []string
	for _, sh := range shares {
		out = append(out, sh.Path)
	}
	return out
}

// awaitTemplatePoint waits, at most timeout, for the guest's pre-init
// event on the events port: the guest is at the template point.
// The connection is returned open.
func awaitTemplatePoint(events net.Listener, timeout time.Duration, kernelBooted func()) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	events.(*net.UnixListener).SetDeadline(deadline)
	conn, err := events.Accept()
	if err != nil {
		return nil, fmt.Errorf("no events port: %w", err)
	}
	conn.SetReadDeadline(deadline)
	r := bufio.NewReaderSize(conn, maxEventLine)
	for {
		line, err := readLine(r)
		if err != nil && !errors.Is(err, errLongLine) {
			conn.Close()
			return nil, fmt.Errorf("no pre-init event: %w", err)
		}
		e, err := contract.ParseEvent(line)
		switch {
		case err != nil:
		case e.Kind == contract.EventKernelBooted:
			kernelBooted()
		case e.Kind == contract.EventTemplatePoint:
			return conn, nil
		}
	}
}

// templateConsole is what an error shows of a template VM's console.
func templateConsole(path string) string {
	b, _ := readTail(path, consoleTail)
	return strings.Join(consoleExcerpt(string(b)), "\n")
}
