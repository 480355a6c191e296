package units

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema/types"
	"github.com/coreos/go-systemd/v22/unit"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/volplan"
)

// DefaultPath is the PATH an app gets when its manifest sets none (appc
// requires the executor to provide one).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// StopTimeout bounds an app's orderly stop: systemd sends SIGTERM to the
// app's main process (KillMode=mixed), and SIGKILL to everything left in its
// cgroup when this expires. rkt stop (without --force) and the end of the
// pod must finish in bounded time, with post-stop handlers still run and
// exit statuses still written, even for an app that ignores SIGTERM.
const StopTimeout = "10s"

// App is one app of the pod, as the units need it.
type App struct {
	// Name is the app's name in the pod (an AC name).
	Name string
	// ImageName is the image's name, for descriptions only.
	ImageName string
	// App is the effective app: the pod manifest's apps[].app if set,
	// else the image manifest's app.
	App types.App
	// RootfsHost is the host path of the app's rootfs, where user and
	// group names and bare executable names are resolved.
	RootfsHost string
	// ReadOnlyRootFS makes the app's rootfs read-only (rkt's
	// readOnlyRootFS).
	ReadOnlyRootFS bool
	// Binds are the app's volumes: guest directories bound at paths
	// inside the app's root.
	Binds []volplan.Bind
	// MetadataURL is the app's AC_METADATA_URL (rkt run --mds-register):
	// the metadata service with the pod's token as the path. Empty: the
	// variable is not set.
	MetadataURL string
	// Streams are the app's stream modes (rkt run --stdin/--stdout/--stderr).
	Streams StreamModes
}

// Pod is what Generate needs to know about the pod.
type Pod struct {
	Apps []App
	// Interactive connects the single app's stdin (rkt run
	// --interactive, which rkt allows only with exactly one app).
	Interactive bool
	// TTY (with Interactive) gives the app the guest terminal contract.TTYPath
	// for stdin, stdout and stderr, sized Rows x Cols: rkt run
	// --interactive from a terminal.
	TTY        bool
	Rows, Cols int
	// DisableCapabilities, DisableSeccomp and DisablePaths are rkt's
	// --insecure-options=capabilities,seccomp,paths: no capability
	// bounding set, no syscall filter (isolators and defaults alike), no
	// protection of kernel paths under /proc and /sys.
	DisableCapabilities, DisableSeccomp, DisablePaths bool
}

// File is a unit file to install in the guest's unit directory.
type File struct {
	Name    string
	Content []byte
}

// Generate writes the pod's units, sorted by name: one service per app, the
// I/O forwarder, the ready and settled marks and the pod's target,
// which pulls them in (names in contract).
// (Long but linear: one unit after another.)
func Generate(p Pod) ([]File, error) {
	names, err := validatePod(p)
	if err != nil {
		return nil, err
	}
	var files []File
	add := func(name string, opts []*unit.UnitOption) error {
		content, err := render(opts)
		if err != nil {
			return fmt.Errorf("unit %s: %w", name, err)
		}
		files = append(files, File{Name: name, Content: content})
		return nil
	}
	for _, a := range p.Apps {
		opts, err := appUnit(a, p)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", a.Name, err)
		}
		if err := add(contract.AppService(a.Name), opts); err != nil {
			return nil, err
		}
	}
	ready, settled := readyUnit(names), settledUnit()
	mark, err := markServiceUnit()
	if err != nil {
		return nil, err
	}
	warm, err := warmUnit(p, names)
	if err != nil {
		return nil, err
	}
	var targetExtra []string
	if warm != nil {
		if err := add(WarmService, warm); err != nil {
			return nil, err
		}
		targetExtra = append(targetExtra, WarmService)
	}
	for _, u := range []struct {
		name string
		opts []*unit.UnitOption
	}{
		{contract.ReadySocket, ready},
		{contract.SettledSocket, settled},
		{contract.MarkService, mark},
		{contract.PodTarget, podTarget(names, targetExtra...)},
	} {
		if err := add(u.name, u.opts); err != nil {
			return nil, err
		}
	}
	sysctl, err := sysctlUnit(p)
	if err != nil {
		return nil, err
	}
	if sysctl != nil {
		if err := add(SysctlService, sysctl); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// validatePod checks what every unit relies on and returns the app names
// in pod order. App names become unit names, file names and list items, so
// only valid AC names (lower-case letters, digits, dashes) are accepted.
func validatePod(p Pod) ([]string, error) {
	if len(p.Apps) == 0 {
		return nil, fmt.Errorf("pod has no apps: %w", ErrInvalidPod)
	}
	if p.Interactive && len(p.Apps) != 1 {
		return nil, fmt.Errorf("interactive mode needs exactly one app, the pod has %d: %w", len(p.Apps), ErrInvalidPod)
	}
	names := make([]string, 0, len(p.Apps))
	for _, a := range p.Apps {
		if _, err := types.NewACName(a.Name); err != nil {
			return nil, fmt.Errorf("app name %q: %v: %w", a.Name, err, ErrInvalidPod)
		}
		if slices.Contains(names, a.Name) {
			return nil, fmt.Errorf("app name %q appears twice: %w", a.Name, ErrInvalidPod)
		}
		// Names that are systemd's or ours would clash with the other
		// units.
		if strings.HasPrefix(contract.AppService(a.Name), "stage1-") {
			return nil, fmt.Errorf("app name %q: names starting with stage1- are reserved: %w", a.Name, ErrInvalidPod)
		}
		if err := a.Streams.check(); err != nil {
			return nil, fmt.Errorf("app %s: %w", a.Name, err)
		}
		names = append(names, a.Name)
	}
	return names, nil
}

func unitOpt(name, value string) *unit.UnitOption {
	return unit.NewUnitOption("Unit", name, value)
}

func service(name, value string) *unit.UnitOption {
	return unit.NewUnitOption("Service", name, value)
}

// render serializes a unit and refuses lines systemd would not read.
func render(opts []*unit.UnitOption) ([]byte, error) {
	data, err := io.ReadAll(unit.Serialize(opts))
	if err != nil {
		return nil, err
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if len(line) > maxLineLen {
			return nil, fmt.Errorf("a line of %d bytes is longer than systemd reads (%d): %w", len(line), maxLineLen, ErrUnrepresentable)
		}
	}
	return data, nil
}

// guestCommand is an Exec line running our guest program.
func guestCommand(prefix string, args ...string) (string, error) {
	return execLine(prefix, append([]string{contract.GuestProgram}, args...))
}

func serviceNames(names []string) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = contract.AppService(n)
	}
	return strings.Join(s, " ")
}

// podTarget pulls in the whole pod (contract.PodTarget; the guest's configure service starts it).
// AllowIsolate lets systemd isolate it at boot, as it does with any default
// target, so nothing else is started.
func podTarget(names []string, extra ...string) []*unit.UnitOption {
	// The journal is the pod's: its sockets and journald start with the
	// pod (a guest waiting for its pod has none; see BootTarget).
	wants := serviceNames(names) + " " + contract.ReadySocket + " " + contract.SettledSocket +
		" " + contract.JournalSockets + " " + contract.JournalService
	for _, e := range extra {
		wants += " " + e
	}
	return []*unit.UnitOption{
		unitOpt("Description", "rkt pod"),
		unitOpt("Requires", "basic.target "+contract.IOService),
		unitOpt("After", "basic.target"),
		unitOpt("Wants", wants),
		unitOpt("AllowIsolate", "yes"),
	}
}

// IOConfig is what the I/O forwarder serves p with (sent in
// contract.PodConfig): every app, and the interactive one.
func IOConfig(p Pod) contract.IOConfig {
	c := contract.IOConfig{TTY: p.Interactive && p.TTY}
	for _, a := range p.Apps {
		c.Apps = append(c.Apps, a.Name)
	}
	if p.Interactive && len(p.Apps) > 0 {
		c.Interactive = p.Apps[0].Name
	}
	return c
}

// IOService is the unit of the I/O forwarder (contract.IOService), for
// the guest image: the boot starts it, before the configure service,
// which hands it the pod's apps (contract.IOConfig). It creates every
// app's FIFOs before the configure service ends and the apps start.
// Since apps are ordered after it, at shutdown they stop first and it
// drains their output, then waits for journald to store it. The same
// process is the guest agent (enter, stop), whose commands therefore live
// in this unit's cgroup.
func IOService() (File, error) {
	exec, err := guestCommand("", "io")
	if err != nil {
		return File{}, err
	}
	content, err := render([]*unit.UnitOption{
		unitOpt("Description", "I/O forwarding and guest agent for the pod's apps"),
		unitOpt("DefaultDependencies", "no"),
		// At boot journald's sockets have no job (they are the pod's),
		// so this orders only the stop: before journald's.
		unitOpt("After", "basic.target "+contract.JournalSockets),
		// Stopped by the power-off itself (after the apps), while
		// journald still runs: it then waits for journald to have
		// written everything the apps said (guest.SyncJournal).
		unitOpt("Before", contract.ConfigureService+" shutdown.target"),
		unitOpt("Conflicts", "shutdown.target"),
		service("Type", "notify"),
		service("ExecStart", exec),
		// Its stop waits for journald to store, then for the host to
		// take, the apps' last output.
		service("TimeoutStopSec", strconv.Itoa(int(contract.IOStopTimeout/time.Second))+"s"),
	})
	if err != nil {
		return File{}, err
	}
	return File{Name: contract.IOService, Content: content}, nil
}

// readyUnit marks that every app has been started: systemd makes its FIFO
// (contract.ReadyMark) once every app's start job is done, and the I/O
// forwarder, watching contract.MarkDir, tells the host. A socket unit, not a
// service: no process is started for it (a program's start costs tens of
// milliseconds of emulated CPU, beside the apps' own start).
func readyUnit(names []string) []*unit.UnitOption {
	return markUnit("Mark that the pod's apps are started", contract.ReadyMark,
		// Ready means enter works too: the agent is up before the apps
		// start (it is part of the I/O forwarder), and each app's
		// process runs in its own root (Type=exec).
		serviceNames(names))
}

// settledUnit marks that systemd has no boot job left (journald included,
// which starts after the apps). The I/O forwarder then trims the guest's
// memory, tells the host (which drops the boot's translated code, see
// supervisor.releaseBootMemory) and starts its exit reporter.
func settledUnit() []*unit.UnitOption {
	return markUnit("Mark that the guest's boot is over", contract.SettledMark,
		contract.ReadySocket+" "+contract.JournalService)
}

// markUnit is a socket unit whose only effect is its FIFO, mark, made in
// contract.MarkDir once the units after lists have started. Nothing writes
// to it (root only may).
func markUnit(description, mark, after string) []*unit.UnitOption {
	return []*unit.UnitOption{
		unitOpt("Description", description),
		unitOpt("DefaultDependencies", "no"),
		unitOpt("After", after),
		unit.NewUnitOption("Socket", "ListenFIFO", path.Join(contract.MarkDir, mark)),
		unit.NewUnitOption("Socket", "SocketMode", "0600"),
		// A socket must name a service it could start (and is
		// ordered before it): not one of the pod's, which would
		// make an ordering cycle.
		unit.NewUnitOption("Socket", "Service", contract.MarkService),
	}
}

// markServiceUnit is what a write to a mark would start: a program that
// ends at once (a socket that triggers it again and again is stopped by
// systemd's trigger limit).
func markServiceUnit() ([]*unit.UnitOption, error) {
	exec, err := guestCommand("", "mark")
	if err != nil {
		return nil, err
	}
	return []*unit.UnitOption{
		unitOpt("Description", "Nothing: the service the pod's marks name"),
		unitOpt("DefaultDependencies", "no"),
		service("Type", "oneshot"),
		service("ExecStart", exec),
	}, nil
}

// appUnit is the service running one app.
func appUnit(a App, p Pod) ([]*unit.UnitOption, error) {
	opts, err := appService(a, p)
	if err != nil {
		return nil, err
	}
	return append(placement(), opts...), nil
}

// appService is everything of an app's unit but its place in the pod
// (placement): how systemd runs the app.
func appService(a App, p Pod) ([]*unit.UnitOption, error) {
	root := openRootfs(a.RootfsHost)
	defer root.Close()

	creds, err := resolveCredentials(a, root)
	if err != nil {
		return nil, err
	}
	env := AppEnvironment(a)
	pathEnv := DefaultPath
	for _, kv := range env {
		if kv.Name == "PATH" {
			pathEnv = kv.Value
		}
	}

	wd := a.App.WorkingDirectory
	if wd == "" {
		wd = "/"
	}
	if err := checkWorkingDirectory(wd); err != nil {
		return nil, err
	}

	opts := baseOptions(a, wd, creds)
	if len(creds.SupplementaryGIDs) > 0 {
		opts = append(opts, service("SupplementaryGroups", joinIDs(creds.SupplementaryGIDs)))
	}
	envOpts, err := environmentOptions(env)
	if err != nil {
		return nil, err
	}
	opts = append(opts, envOpts...)

	execOpts, err := execOptions(a, root, pathEnv)
	if err != nil {
		return nil, err
	}
	opts = append(opts, execOpts...)

	opts = append(opts, streamOptions(a, p)...)
	opts = append(opts, service("SyslogIdentifier", a.Name))

	isoOpts, err := isolatorOptions(a, creds.UID, p)
	if err != nil {
		return nil, err
	}
	opts = append(opts, isoOpts...)

	fsOpts, err := fileSystemOptions(a)
	if err != nil {
		return nil, err
	}
	opts = append(opts, fsOpts...)
	opts = append(opts,
		service("KillMode", "mixed"),
		service("TimeoutStopSec", StopTimeout),
	)
	return opts, nil
}

// placement orders an app's unit against the I/O forwarder and journald.
func placement() []*unit.UnitOption {
	return []*unit.UnitOption{
		// The I/O forwarder must hold the FIFOs' other ends before the
		// app opens them, and outlive the app at shutdown.
		// The apps may log to journald's sockets (/dev/log) from their
		// start.
		unitOpt("Requires", contract.IOService),
		unitOpt("After", contract.IOService+" "+contract.JournalSockets),
		// journald starts once the apps have: its start (~0.4 s of
		// emulated CPU on one vCPU) would otherwise delay the app's.
		// Nothing is lost meanwhile: its sockets already exist and
		// queue what the I/O forwarder and the apps log.
		unitOpt("Before", contract.JournalService),
	}
}

// baseOptions are the app's description, type, root, directory and
// credentials.
func baseOptions(a App, wd string, creds Credentials) []*unit.UnitOption {
	return []*unit.UnitOption{
		unitOpt("Description", description(a)),
		// exec, not simple: the app counts as started once its own
		// binary runs in its root, so "ready" (and enter right after
		// it) finds the app's process in the app's view of the world.
		service("Type", "exec"),
		service("Restart", "no"),
		service("RootDirectory", contract.AppRootfs(a.Name)),
		service("WorkingDirectory", escapeSpecifiers(wd)),
		service("User", strconv.FormatUint(uint64(creds.UID), 10)),
		service("Group", strconv.FormatUint(uint64(creds.GID), 10)),
	}
}

// fileSystemOptions make the app's root read-only if asked and bind its
// volumes.
func fileSystemOptions(a App) ([]*unit.UnitOption, error) {
	var opts []*unit.UnitOption
	if a.ReadOnlyRootFS {
		// systemd takes these paths in the guest's view and drops any
		// outside RootDirectory: name the app's rootfs itself.
		opts = append(opts, service("ReadOnlyPaths", contract.AppRootfs(a.Name)))
	}
	bindOpts, err := bindOptions(a.Binds)
	if err != nil {
		return nil, err
	}
	return append(opts, bindOpts...), nil
}

// joinIDs is a space-separated list of IDs, as systemd's settings take them.
func joinIDs(ids []uint32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(s, " ")
}

// environmentOptions are the app's Environment= lines, one per variable.
func environmentOptions(env []types.EnvironmentVariable) ([]*unit.UnitOption, error) {
	var opts []*unit.UnitOption
	for _, kv := range env {
		v, err := quoteEnvironment(kv.Name, kv.Value)
		if err != nil {
			return nil, err
		}
		opts = append(opts, service("Environment", v))
	}
	return opts, nil
}

// streamOptions connect the app's standard streams: the guest terminal for
// an interactive app on a terminal, else the FIFOs of the I/O forwarder
// (stdin only when interactive).
func streamOptions(a App, p Pod) []*unit.UnitOption {
	app := a.Name
	var opts []*unit.UnitOption
	switch {
	case p.Interactive && p.TTY:
		opts = append(opts,
			service("StandardInput", "tty"),
			service("StandardOutput", "tty"),
			service("StandardError", "tty"),
			// The forwarder's pseudo-terminal, new for this app. Not
			// TTYReset= or TTYVHangup=: systemd applies them again when
			// the app ends, and both throw away what the app wrote
			// last and the forwarder has not read yet.
			service("TTYPath", contract.TTYPath),
		)
		if p.Rows > 0 && p.Cols > 0 {
			opts = append(opts,
				service("TTYRows", strconv.Itoa(p.Rows)),
				service("TTYColumns", strconv.Itoa(p.Cols)))
		}
	case p.Interactive:
		opts = append(opts,
			service("StandardInput", "file:"+contract.AppFIFO(app, contract.Stdin)),
			service("StandardOutput", "file:"+contract.AppFIFO(app, contract.Stdout)),
			service("StandardError", "file:"+contract.AppFIFO(app, contract.Stderr)))
	default:
		opts = append(opts,
			service("StandardInput", "null"),
			service("StandardOutput", "file:"+contract.AppFIFO(app, contract.Stdout)),
			service("StandardError", "file:"+contract.AppFIFO(app, contract.Stderr)))
	}
	// rkt's "null" mode: the stream goes nowhere (a later option wins in
	// systemd).
	if a.Streams.Stdout == "null" {
		opts = append(opts, service("StandardOutput", "null"))
	}
	if a.Streams.Stderr == "null" {
		opts = append(opts, service("StandardError", "null"))
	}
	return opts
}

// execOptions are the app's ExecStartPre=, ExecStart= and ExecStopPost=
// lines.
//
// The app's post-stop handlers get systemd's "-" prefix: a failing handler
// must not change the app's recorded result.
func execOptions(a App, root *rootfs, pathEnv string) ([]*unit.UnitOption, error) {
	command := func(what string, argv types.Exec) ([]string, error) {
		if len(argv) == 0 {
			return nil, fmt.Errorf("%s: empty exec: %w", what, ErrInvalidPod)
		}
		exe, err := resolveExecutable(root, argv[0], pathEnv, a.Binds)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return append([]string{exe}, argv[1:]...), nil
	}
	line := func(what, prefix string, argv []string) (string, error) {
		l, err := execLine(prefix, argv)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		return l, nil
	}

	var pre, post []*unit.UnitOption
	for _, h := range a.App.EventHandlers {
		what := h.Name + " event handler"
		argv, err := command(what, h.Exec)
		if err != nil {
			return nil, err
		}
		switch h.Name {
		case "pre-start":
			l, err := line(what, "", argv)
			if err != nil {
				return nil, err
			}
			pre = append(pre, service("ExecStartPre", l))
		case "post-stop":
			l, err := line(what, "-", argv)
			if err != nil {
				return nil, err
			}
			post = append(post, service("ExecStopPost", l))
		default:
			return nil, fmt.Errorf("unknown event handler %q: %w", h.Name, ErrInvalidPod)
		}
	}

	argv, err := command("exec", a.App.Exec)
	if err != nil {
		return nil, err
	}
	start, err := line("exec", "", argv)
	if err != nil {
		return nil, err
	}
	opts := append(pre, service("ExecStart", start))
	return append(opts, post...), nil
}

// AppEnvironment is the app's environment as appc defines it: the
// manifest's variables (a later duplicate replaces an earlier one, in
// place), AC_APP_NAME and AC_METADATA_URL (the executor's to set, so they
// override the manifest's), and PATH=DefaultPath when the manifest sets no
// PATH. enter gives commands the same.
func AppEnvironment(a App) []types.EnvironmentVariable {
	var env types.Environment
	for _, kv := range a.App.Environment {
		if kv.Name == "AC_APP_NAME" || (kv.Name == "AC_METADATA_URL" && a.MetadataURL != "") {
			continue
		}
		env.Set(kv.Name, kv.Value)
	}
	env.Set("AC_APP_NAME", a.Name)
	if a.MetadataURL != "" {
		env.Set("AC_METADATA_URL", a.MetadataURL)
	}
	if _, ok := env.Get("PATH"); !ok {
		env.Set("PATH", DefaultPath)
	}
	return env
}

// checkWorkingDirectory accepts what systemd's WorkingDirectory= accepts
// literally: an absolute, normalized path on one line.
func checkWorkingDirectory(wd string) error {
	if !path.IsAbs(wd) {
		return fmt.Errorf("working directory %q is not absolute: %w", wd, ErrInvalidPod)
	}
	if err := plainValue("working directory", wd); err != nil {
		return err
	}
	if slices.Contains(strings.Split(wd, "/"), "..") {
		return fmt.Errorf("working directory %q contains \"..\", which systemd refuses: %w", wd, ErrUnrepresentable)
	}
	return nil
}

// description names the app and its image. The image name comes from a
// manifest: anything unusual in it is shown quoted, so it cannot break the
// line.
func description(a App) string {
	d := "Application " + a.Name
	if a.ImageName != "" {
		img := a.ImageName
		if plainValue("image name", img) != nil {
			img = strconv.QuoteToASCII(img)
		}
		d += " (image " + img + ")"
	}
	return escapeSpecifiers(d)
}

// bindOptions are the app's BindPaths= and BindReadOnlyPaths=. The source
// is in the guest's view; systemd takes the target inside RootDirectory.
// Paths are limited to characters that need no quoting in these settings.
func bindOptions(binds []volplan.Bind) ([]*unit.UnitOption, error) {
	var opts []*unit.UnitOption
	for _, b := range binds {
		for _, p := range []string{b.Source, b.Target} {
			if !path.IsAbs(p) || path.Clean(p) != p || strings.Trim(p, bindPathChars) != "" {
				return nil, fmt.Errorf("volume path %q: only clean absolute paths of letters, digits and %q can be bound: %w", p, "/._-+@=", ErrUnrepresentable)
			}
		}
		name := "BindPaths"
		if b.ReadOnly {
			name = "BindReadOnlyPaths"
		}
		opts = append(opts, service(name, b.Source+":"+b.Target))
	}
	return opts, nil
}

const bindPathChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+@="
