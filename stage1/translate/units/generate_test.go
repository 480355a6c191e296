package units

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
	"github.com/coreos/go-systemd/v22/unit"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/volplan"
)

// parsed is a unit file read back with go-systemd's parser.
type parsed []*unit.UnitOption

func parse(t *testing.T, f File) parsed {
	t.Helper()
	opts, err := unit.DeserializeOptions(bytes.NewReader(f.Content))
	if err != nil {
		t.Fatalf("%s does not parse: %v\n%s", f.Name, err, f.Content)
	}
	return opts
}

// all returns every value of section/name, in file order.
func (p parsed) all(section, name string) []string {
	var v []string
	for _, o := range p {
		if o.Section == section && o.Name == name {
			v = append(v, o.Value)
		}
	}
	return v
}

// one returns the single value of section/name.
func (p parsed) one(t *testing.T, section, name string) string {
	t.Helper()
	v := p.all(section, name)
	if len(v) != 1 {
		t.Fatalf("%s/%s: %d values %q, want 1", section, name, len(v), v)
	}
	return v[0]
}

func (p parsed) exec(t *testing.T, name string) [][]string {
	t.Helper()
	var cmds [][]string
	for _, v := range p.all("Service", name) {
		prefix, argv, err := decodeExec(v)
		if err != nil {
			t.Fatalf("%s=%s: %v", name, v, err)
		}
		cmds = append(cmds, append([]string{prefix}, argv...))
	}
	return cmds
}

func (p parsed) env(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, v := range p.all("Service", "Environment") {
		name, value, err := decodeEnvironment(v)
		if err != nil {
			t.Fatalf("Environment=%s: %v", v, err)
		}
		if _, dup := env[name]; dup {
			t.Errorf("Environment: %s set twice", name)
		}
		env[name] = value
	}
	return env
}

func isolator(t *testing.T, name, value string) types.Isolator {
	t.Helper()
	var i types.Isolator
	if err := json.Unmarshal([]byte(`{"name":"`+name+`","value":`+value+`}`), &i); err != nil {
		t.Fatal(err)
	}
	return i
}

func simpleApp(name string) App {
	return App{Name: name, ImageName: "example.com/" + name, App: types.App{
		Exec: types.Exec{"/bin/" + name}, User: "0", Group: "0",
	}}
}

func generate(t *testing.T, p Pod) map[string]parsed {
	t.Helper()
	files, err := Generate(p)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if !slices.IsSortedFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("files not sorted by name")
	}
	m := map[string]parsed{}
	for _, f := range files {
		m[f.Name] = parse(t, f)
	}
	return m
}

func TestGenerateFileNames(t *testing.T) {
	files, err := Generate(Pod{Apps: []App{simpleApp("zeta"), simpleApp("alpha")}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	want := []string{"alpha.service", "stage1-mark.service", "stage1-pod.target", "stage1-ready.socket", "stage1-settled.socket", "zeta.service"}
	if !slices.Equal(names, want) {
		t.Errorf("files = %q, want %q", names, want)
	}
}

func TestAppUnit(t *testing.T) {
	root := fakeRootfs(t)
	for _, exe := range []string{"usr/bin/server", "bin/cleanup", "bin/prepare"} {
		writeFile(t, root, exe, "#!/bin/sh\n")
		os.Chmod(filepath.Join(root, exe), 0o755)
	}
	a := App{
		Name:      "web",
		ImageName: "example.com/web-100%",
		App: types.App{
			Exec:              types.Exec{"server", "--listen", ":80", "$HOME", "100%", "a b", ""},
			User:              "web",
			Group:             "www",
			SupplementaryGIDs: []int{10, 20},
			WorkingDirectory:  "/srv/100%",
			Environment: types.Environment{
				{Name: "GREETING", Value: `say "hi" to $USER, 100% \o/`},
				{Name: "AC_APP_NAME", Value: "spoofed"},
				{Name: "MULTI", Value: "line1\nline2"},
			},
			EventHandlers: []types.EventHandler{
				{Name: "post-stop", Exec: types.Exec{"/bin/cleanup", "--all"}},
				{Name: "pre-start", Exec: types.Exec{"/bin/prepare", "x y"}},
			},
			Isolators: types.Isolators{
				isolator(t, "resource/memory", `{"limit":"1Gi"}`),
				isolator(t, "resource/cpu", `{"limit":"2"}`),
				isolator(t, "resource/memory", `{"limit":"256Mi"}`),
				isolator(t, "resource/cpu", `{"limit":"500m"}`),
			},
		},
		RootfsHost:     root,
		ReadOnlyRootFS: true,
	}
	units := generate(t, Pod{Apps: []App{a, simpleApp("db")}})
	u := units["web.service"]
	if u == nil {
		t.Fatal("no web.service")
	}

	if d := u.one(t, "Unit", "Description"); !strings.Contains(d, "web") || !strings.Contains(d, "example.com/web-100%%") {
		t.Errorf("Description = %q", d)
	}
	for name, want := range map[string]string{
		"Requires": "stage1-io.service",
		"After":    "stage1-io.service systemd-journald.socket systemd-journald-dev-log.socket",
	} {
		if got := u.one(t, "Unit", name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// journald starts after the apps.
	if got := strings.Join(u.all("Unit", "Before"), " "); got != "systemd-journald.service" {
		t.Errorf("Before = %q", got)
	}
	if v := u.all("Unit", "DefaultDependencies"); len(v) != 0 {
		t.Errorf("DefaultDependencies = %q, want the default", v)
	}
	for name, want := range map[string]string{
		"Type":                "exec",
		"Restart":             "no",
		"RootDirectory":       "/pod/opt/stage2/web/rootfs",
		"WorkingDirectory":    "/srv/100%%",
		"User":                "1000",
		"Group":               "1001",
		"SupplementaryGroups": "10 20",
		"StandardInput":       "null",
		"StandardOutput":      "file:/run/stage1/io/web.stdout",
		"StandardError":       "file:/run/stage1/io/web.stderr",
		"SyslogIdentifier":    "web",
		"MemoryMax":           "268435456",
		"CPUQuota":            "50%",
		"KillMode":            "mixed",
		"TimeoutStopSec":      "10s",
	} {
		if got := u.one(t, "Service", name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	if got := u.all("Service", "ReadOnlyPaths"); !slices.Contains(got, contract.AppRootfs("web")) {
		t.Errorf("ReadOnlyPaths = %q, want \"/\" among them (readOnlyRootFS)", got)
	}
	if got, want := u.exec(t, "ExecStart"), [][]string{{"", "/usr/bin/server", "--listen", ":80", "$HOME", "100%", "a b", ""}}; !equalCmds(got, want) {
		t.Errorf("ExecStart = %q, want %q", got, want)
	}
	if got, want := u.exec(t, "ExecStartPre"), [][]string{{"", "/bin/prepare", "x y"}}; !equalCmds(got, want) {
		t.Errorf("ExecStartPre = %q, want %q", got, want)
	}
	wantPost := [][]string{
		{"-", "/bin/cleanup", "--all"},
	}
	if got := u.exec(t, "ExecStopPost"); !equalCmds(got, wantPost) {
		t.Errorf("ExecStopPost = %q, want %q", got, wantPost)
	}

	wantEnv := map[string]string{
		"GREETING":    `say "hi" to $USER, 100% \o/`,
		"AC_APP_NAME": "web",
		"MULTI":       "line1\nline2",
		"PATH":        DefaultPath,
	}
	if got := u.env(t); !mapsEqual(got, wantEnv) {
		t.Errorf("environment = %q, want %q", got, wantEnv)
	}

	// The I/O forwarder reports the app's end: no unit is started for it.
	for _, dep := range []string{"OnSuccess", "OnFailure"} {
		if got := u.all("Unit", dep); len(got) != 0 {
			t.Errorf("%s = %q, want none", dep, got)
		}
	}

	db := units["db.service"]
	if got := db.exec(t, "ExecStopPost"); len(got) != 0 {
		t.Errorf("db ExecStopPost = %q, want none", got)
	}
	for _, name := range []string{"MemoryMax", "CPUQuota", "SupplementaryGroups", "ExecStartPre"} {
		if v := db.all("Service", name); len(v) != 0 {
			t.Errorf("db: %s = %q, want none", name, v)
		}
	}
	if got := db.all("Service", "ReadOnlyPaths"); slices.Contains(got, contract.AppRootfs("db")) {
		t.Errorf("db: ReadOnlyPaths = %q, want no \"/\" (rootfs writable)", got)
	}
	if got := db.one(t, "Service", "WorkingDirectory"); got != "/" {
		t.Errorf("db WorkingDirectory = %q, want /", got)
	}
}

func TestAppPathKeptWhenSet(t *testing.T) {
	a := simpleApp("a")
	a.App.Environment = types.Environment{{Name: "PATH", Value: "/opt/bin"}}
	env := generate(t, Pod{Apps: []App{a}})["a.service"].env(t)
	if env["PATH"] != "/opt/bin" {
		t.Errorf("PATH = %q, want the app's", env["PATH"])
	}
}

func TestBareExecutableSearchesAppPath(t *testing.T) {
	root := fakeRootfs(t)
	writeFile(t, root, "opt/bin/tool", "")
	writeFile(t, root, "usr/bin/tool", "")
	writeFile(t, root, "bin/tool", "")
	os.Chmod(filepath.Join(root, "usr/bin/tool"), 0o755)
	os.Chmod(filepath.Join(root, "bin/tool"), 0o755)
	os.MkdirAll(filepath.Join(root, "sbin/tool"), 0o755) // a directory: skipped
	// A symlink leaving the rootfs must not be taken for a match.
	os.MkdirAll(filepath.Join(root, "evil"), 0o755)
	os.Symlink("/bin/sh", filepath.Join(root, "evil/sh"))

	a := simpleApp("a")
	a.RootfsHost = root
	a.App.Exec = types.Exec{"tool", "arg"}
	a.App.Environment = types.Environment{{Name: "PATH", Value: "relative:/sbin:/opt/bin:/usr/bin:/bin"}}
	u := generate(t, Pod{Apps: []App{a}})["a.service"]
	if got, want := u.exec(t, "ExecStart"), [][]string{{"", "/usr/bin/tool", "arg"}}; !equalCmds(got, want) {
		t.Errorf("ExecStart = %q, want %q", got, want)
	}

	a.App.Exec = types.Exec{"sh"}
	a.App.Environment = types.Environment{{Name: "PATH", Value: "/evil"}}
	if _, err := Generate(Pod{Apps: []App{a}}); !errors.Is(err, ErrInvalidPod) {
		t.Errorf("found sh through a symlink out of the rootfs: err = %v", err)
	}
}

func TestInteractive(t *testing.T) {
	units := generate(t, Pod{Apps: []App{simpleApp("sh")}, Interactive: true})
	if got := units["sh.service"].one(t, "Service", "StandardInput"); got != "file:/run/stage1/io/sh.stdin" {
		t.Errorf("StandardInput = %q", got)
	}
	if got, want := IOConfig(Pod{Apps: []App{simpleApp("sh")}, Interactive: true}), (contract.IOConfig{Apps: []string{"sh"}, Interactive: "sh"}); !reflect.DeepEqual(got, want) {
		t.Errorf("IOConfig = %+v, want %+v", got, want)
	}

	_, err := Generate(Pod{Apps: []App{simpleApp("a"), simpleApp("b")}, Interactive: true})
	if !errors.Is(err, ErrInvalidPod) {
		t.Errorf("interactive with two apps: err = %v, want ErrInvalidPod", err)
	}
}

func TestPodUnits(t *testing.T) {
	units := generate(t, Pod{Apps: []App{simpleApp("b"), simpleApp("a")}})

	target := units["stage1-pod.target"]
	if got := target.one(t, "Unit", "Requires"); got != "basic.target stage1-io.service" {
		t.Errorf("target Requires = %q", got)
	}
	if got := target.one(t, "Unit", "After"); got != "basic.target" {
		t.Errorf("target After = %q", got)
	}
	// The journal starts with the pod, not before (a template has none).
	if got := target.one(t, "Unit", "Wants"); got != "b.service a.service stage1-ready.socket stage1-settled.socket systemd-journald.socket systemd-journald-dev-log.socket systemd-journald.service" {
		t.Errorf("target Wants = %q", got)
	}

	// The host learns when boot is over, after journald (which starts
	// after the apps): systemd makes the settled mark then.
	settled := units["stage1-settled.socket"]
	if got := settled.one(t, "Unit", "After"); got != "stage1-ready.socket systemd-journald.service" {
		t.Errorf("settled After = %q", got)
	}
	checkMark(t, settled, "/run/stage1/marks/settled")

	ready := units["stage1-ready.socket"]
	if got := ready.one(t, "Unit", "After"); got != "b.service a.service" {
		t.Errorf("ready After = %q", got)
	}
	checkMark(t, ready, "/run/stage1/marks/ready")

	// What the marks name: it exists (systemd refuses a socket without
	// one), ends at once, and is ordered after nothing of the pod.
	mark := units["stage1-mark.service"]
	if got, want := mark.exec(t, "ExecStart"), [][]string{{"", contract.GuestProgram, "mark"}}; !equalCmds(got, want) {
		t.Errorf("mark ExecStart = %q, want %q", got, want)
	}
	if got := mark.all("Unit", "After"); len(got) != 0 {
		t.Errorf("mark After = %q, want none", got)
	}
}

// The I/O forwarder is the image's, up from the boot: before the
// configure service (which hands it the pod), stopped after the apps
// (which are ordered after it) and before journald's sockets.
func TestIOService(t *testing.T) {
	f, err := IOService()
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != contract.IOService {
		t.Errorf("name %q, want %q", f.Name, contract.IOService)
	}
	io := parse(t, f)
	io.expect(t, "io", "Unit", map[string]string{
		"DefaultDependencies": "no",
		"After":               "basic.target systemd-journald.socket systemd-journald-dev-log.socket",
		"Before":              "stage1-configure.service shutdown.target",
		"Conflicts":           "shutdown.target",
	})
	if got := io.one(t, "Service", "Type"); got != "notify" {
		t.Errorf("io Type = %q", got)
	}
	if got, want := io.exec(t, "ExecStart"), [][]string{{"", contract.GuestProgram, "io"}}; !equalCmds(got, want) {
		t.Errorf("io ExecStart = %q, want %q", got, want)
	}
	// Every app names it, and the pod's target needs it.
	units := generate(t, Pod{Apps: []App{simpleApp("b"), simpleApp("a")}})
	for _, u := range []string{"a.service", "b.service", "stage1-pod.target"} {
		if got := units[u].one(t, "Unit", "Requires"); !slices.Contains(strings.Fields(got), contract.IOService) {
			t.Errorf("%s Requires = %q", u, got)
		}
	}
	if got, want := IOConfig(Pod{Apps: []App{simpleApp("b"), simpleApp("a")}}), (contract.IOConfig{Apps: []string{"b", "a"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("IOConfig = %+v, want %+v", got, want)
	}
}

// checkMark checks a mark's socket unit: a FIFO only root may write at
// fifo, naming the mark service (not one of the pod's units, which a
// socket is ordered before: the pod's ordering would have a cycle).
func checkMark(t *testing.T, u parsed, fifo string) {
	t.Helper()
	u.expect(t, "mark "+fifo, "Socket", map[string]string{
		"ListenFIFO": fifo,
		"SocketMode": "0600",
		"Service":    "stage1-mark.service",
	})
	u.expect(t, "mark "+fifo, "Unit", map[string]string{"DefaultDependencies": "no"})
}

// expect checks that each option of section named in want has exactly
// that one value (what names the unit in errors).
func (p parsed) expect(t *testing.T, what, section string, want map[string]string) {
	t.Helper()
	for name, v := range want {
		if got := p.one(t, section, name); got != v {
			t.Errorf("%s %s = %q, want %q", what, name, got, v)
		}
	}
}

// Every nasty argument and environment value survives a trip through the
// whole unit file and go-systemd's parser.
func TestNastyValuesRoundTrip(t *testing.T) {
	a := simpleApp("a")
	a.App.Exec = append(types.Exec{"/bin/echo"}, nastyArgs...)
	a.App.EventHandlers = []types.EventHandler{{Name: "pre-start", Exec: append(types.Exec{"/bin/pre"}, nastyArgs...)}}
	want := map[string]string{"AC_APP_NAME": "a", "PATH": DefaultPath}
	for i, v := range nastyArgs {
		if strings.Contains(v, "\xff") {
			continue // not UTF-8: refused, see TestGenerateErrors
		}
		name := "V" + string(rune('A'+i/26)) + string(rune('A'+i%26))
		a.App.Environment = append(a.App.Environment, types.EnvironmentVariable{Name: name, Value: v})
		want[name] = v
	}
	u := generate(t, Pod{Apps: []App{a}})["a.service"]
	wantArgv := append([]string{"", "/bin/echo"}, nastyArgs...)
	if got := u.exec(t, "ExecStart"); len(got) != 1 || !slices.Equal(got[0], wantArgv) {
		t.Errorf("ExecStart = %q\nwant %q", got, wantArgv)
	}
	wantPre := append([]string{"", "/bin/pre"}, nastyArgs...)
	if got := u.exec(t, "ExecStartPre"); len(got) != 1 || !slices.Equal(got[0], wantPre) {
		t.Errorf("ExecStartPre = %q\nwant %q", got, wantPre)
	}
	if got := u.env(t); !mapsEqual(got, want) {
		t.Errorf("environment = %q\nwant %q", got, want)
	}
}

func TestIsolators(t *testing.T) {
	tests := []struct {
		name     string
		isos     []string // name=value pairs
		mem, cpu string
	}{
		{"none", nil, "", ""},
		{"memory", []string{"resource/memory", `{"limit":"512M"}`}, "512000000", ""},
		{"cpu cores", []string{"resource/cpu", `{"limit":"3"}`}, "", "300%"},
		{"millicores", []string{"resource/cpu", `{"limit":"250m"}`}, "", "25%"},
		{"tiny cpu rounds up", []string{"resource/cpu", `{"limit":"1m"}`}, "", "1%"},
		{"last wins", []string{
			"resource/cpu", `{"limit":"4"}`, "resource/memory", `{"limit":"2Gi"}`,
			"resource/cpu", `{"limit":"1500m"}`, "resource/memory", `{"limit":"64Mi"}`,
		}, "67108864", "150%"},
		{"request only", []string{"resource/memory", `{"request":"64Mi"}`}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := simpleApp("a")
			for i := 0; i < len(tt.isos); i += 2 {
				a.App.Isolators = append(a.App.Isolators, isolator(t, tt.isos[i], tt.isos[i+1]))
			}
			u := generate(t, Pod{Apps: []App{a}})["a.service"]
			for name, want := range map[string]string{"MemoryMax": tt.mem, "CPUQuota": tt.cpu} {
				got := u.all("Service", name)
				if want == "" && len(got) != 0 || want != "" && (len(got) != 1 || got[0] != want) {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestUnsupportedIsolator(t *testing.T) {
	a := simpleApp("a")
	a.App.Isolators = types.Isolators{
		isolator(t, "resource/memory", `{"limit":"1G"}`),
		isolator(t, "os/linux/capabilities-retain-set", `{"set":["CAP_NET_ADMIN"]}`),
		isolator(t, "resource/block-bandwidth", `{"default":true,"limit":"2M"}`),
		isolator(t, "os/linux/selinux-context", `{"user":"u","role":"r","type":"t","level":"s0"}`),
		isolator(t, "example.com/made-up", `{}`),
	}
	_, err := Generate(Pod{Apps: []App{a}})
	if !errors.Is(err, ErrUnsupportedIsolator) {
		t.Fatalf("err = %v, want ErrUnsupportedIsolator", err)
	}
	for _, name := range []string{"resource/block-bandwidth", "os/linux/selinux-context", "example.com/made-up"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	root := fakeRootfs(t)
	tests := []struct {
		name string
		pod  func() Pod
		want error
	}{
		{"no apps", func() Pod { return Pod{} }, ErrInvalidPod},
		{"duplicate names", func() Pod { return Pod{Apps: []App{simpleApp("a"), simpleApp("a")}} }, ErrInvalidPod},
		{"bad name", func() Pod { return Pod{Apps: []App{simpleApp("A/../x")}} }, ErrInvalidPod},
		{"empty name", func() Pod { return Pod{Apps: []App{simpleApp("")}} }, ErrInvalidPod},
		{"reserved name", func() Pod { return Pod{Apps: []App{simpleApp("stage1-io")}} }, ErrInvalidPod},
		{"empty exec", mod(func(a *App) { a.App.Exec = nil }), ErrInvalidPod},
		{"relative exec with a slash", mod(func(a *App) { a.App.Exec = types.Exec{"bin/x"} }), ErrInvalidPod},
		{"bare exec without rootfs", mod(func(a *App) { a.App.Exec = types.Exec{"x"} }), ErrInvalidPod},
		{"bare exec not found", mod(func(a *App) { a.RootfsHost = root; a.App.Exec = types.Exec{"x"} }), ErrInvalidPod},
		{"empty event handler", mod(func(a *App) {
			a.App.EventHandlers = []types.EventHandler{{Name: "pre-start"}}
		}), ErrInvalidPod},
		{"relative event handler", mod(func(a *App) {
			a.App.EventHandlers = []types.EventHandler{{Name: "post-stop", Exec: types.Exec{"./x"}}}
		}), ErrInvalidPod},
		{"unknown event handler", mod(func(a *App) {
			a.App.EventHandlers = []types.EventHandler{{Name: "on-crash", Exec: types.Exec{"/x"}}}
		}), ErrInvalidPod},
		{"NUL in argument", mod(func(a *App) { a.App.Exec = types.Exec{"/x", "a\x00b"} }), ErrUnrepresentable},
		{"env name with a dot", mod(func(a *App) {
			a.App.Environment = types.Environment{{Name: "java.home", Value: "/"}}
		}), ErrUnrepresentable},
		{"env value not UTF-8", mod(func(a *App) {
			a.App.Environment = types.Environment{{Name: "X", Value: "\xff"}}
		}), ErrUnrepresentable},
		{"relative working directory", mod(func(a *App) { a.App.WorkingDirectory = "srv" }), ErrInvalidPod},
		{"working directory with ..", mod(func(a *App) { a.App.WorkingDirectory = "/srv/../etc" }), ErrUnrepresentable},
		{"working directory with newline", mod(func(a *App) { a.App.WorkingDirectory = "/srv\n/x" }), ErrUnrepresentable},
		{"working directory with trailing space", mod(func(a *App) { a.App.WorkingDirectory = "/srv " }), ErrUnrepresentable},
		{"unknown user", mod(func(a *App) { a.RootfsHost = root; a.App.User = "nobody-here" }), ErrUnknownUser},
		{"unknown group", mod(func(a *App) { a.RootfsHost = root; a.App.Group = "nogroup-here" }), ErrUnknownGroup},
		{"invalid memory limit", mod(func(a *App) {
			m := json.RawMessage(`{"limit":"0"}`)
			a.App.Isolators = types.Isolators{{Name: "resource/memory", ValueRaw: &m}}
		}), nil},
		{"argument longer than systemd reads", mod(func(a *App) {
			a.App.Exec = types.Exec{"/x", strings.Repeat("y", 1<<20)}
		}), ErrUnrepresentable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Generate(tt.pod())
			if err == nil {
				t.Fatalf("no error; files: %d", len(files))
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func mod(f func(*App)) func() Pod {
	return func() Pod {
		a := simpleApp("a")
		f(&a)
		return Pod{Apps: []App{a}}
	}
}

func TestDescriptionIsSafe(t *testing.T) {
	a := simpleApp("a")
	a.ImageName = "evil\nExecStart=/bin/sh %n \\"
	files, err := Generate(Pod{Apps: []App{a}})
	if err != nil {
		t.Fatal(err)
	}
	u := parse(t, files[0])
	if v := u.all("Service", "ExecStart"); len(v) != 1 {
		t.Errorf("image name injected a setting: ExecStart = %q", v)
	}
	d := u.one(t, "Unit", "Description")
	if _, err := expandSpecifiers(d); err != nil {
		t.Errorf("Description %q: %v", d, err)
	}
}

func equalCmds(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestInteractiveTTY(t *testing.T) {
	pod := Pod{Apps: []App{simpleApp("web")}, Interactive: true, TTY: true, Rows: 40, Cols: 120}
	units := generate(t, pod)
	u := units["web.service"]
	for name, want := range map[string]string{
		"StandardInput": "tty", "StandardOutput": "tty", "StandardError": "tty",
		"TTYPath": contract.TTYPath, "TTYRows": "40", "TTYColumns": "120",
	} {
		if got := u.one(t, "Service", name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// The forwarder makes the terminal and relays it.
	if got, want := IOConfig(pod), (contract.IOConfig{Apps: []string{"web"}, Interactive: "web", TTY: true}); !reflect.DeepEqual(got, want) {
		t.Errorf("IOConfig = %+v, want %+v", got, want)
	}
}

// AC_METADATA_URL is the executor's to set: it is there only with a
// metadata URL, and then it replaces the manifest's.
func TestMetadataURL(t *testing.T) {
	a := simpleApp("a")
	a.App.Environment = types.Environment{{Name: "AC_METADATA_URL", Value: "http://spoofed"}}
	if got := generate(t, Pod{Apps: []App{a}})["a.service"].env(t)["AC_METADATA_URL"]; got != "http://spoofed" {
		t.Errorf("without a metadata URL: AC_METADATA_URL = %q, want the manifest's", got)
	}
	a.MetadataURL = "http://172.16.28.1:18112/tok"
	env := generate(t, Pod{Apps: []App{a}})["a.service"].env(t)
	if got := env["AC_METADATA_URL"]; got != a.MetadataURL {
		t.Errorf("AC_METADATA_URL = %q, want %q", got, a.MetadataURL)
	}
	if got := AppEnvironment(a); len(got) != 3 {
		t.Errorf("AppEnvironment = %v, want AC_METADATA_URL once, AC_APP_NAME and PATH", got)
	}
}

// An absolute executable that is not an executable file in the app's
// rootfs is refused before boot, naming the path and the reason; one on a
// volume is left to the guest.
func TestExecutableChecked(t *testing.T) {
	root := fakeRootfs(t)
	writeFile(t, root, "bin/real", "#!/bin/sh\n")
	os.Chmod(filepath.Join(root, "bin/real"), 0o755)
	os.Symlink("/bin/real", filepath.Join(root, "bin/link"))
	writeFile(t, root, "bin/data", "x")
	os.MkdirAll(filepath.Join(root, "bin/dir"), 0o755)
	for _, c := range []struct {
		exe, want string
	}{
		{"/bin/real", ""},
		{"/bin/link", ""},
		{"/data/tool", ""},
		{"/nonexistent", "no such file"},
		{"/bin/real/x", "no such file"},
		{"/bin/data", "not executable"},
		{"/bin/dir", "not a regular file"},
	} {
		a := simpleApp("a")
		a.RootfsHost = root
		a.App.Exec = types.Exec{c.exe}
		a.Binds = []volplan.Bind{{Source: "/pod/volumes/data", Target: "/data"}}
		_, err := Generate(Pod{Apps: []App{a}})
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.exe, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidPod) || !strings.Contains(err.Error(), c.exe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrInvalidPod naming the path and %q", c.exe, err, c.want)
		}
	}
}

// An orderly power-off fits in the guest's bound for it: the apps' stop,
// then the I/O forwarder's, which waits for journald and for the host.
func TestStopFitsPowerOff(t *testing.T) {
	units := generate(t, Pod{Apps: []App{simpleApp("a")}})
	app, err := time.ParseDuration(units["a.service"].one(t, "Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := IOService()
	if err != nil {
		t.Fatal(err)
	}
	io, err := time.ParseDuration(parse(t, f).one(t, "Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	if io < contract.JournalSyncTimeout+contract.OutputAckTimeout {
		t.Errorf("the forwarder's stop bound %v is shorter than its own waits", io)
	}
	if app+io >= contract.PowerOffTimeout {
		t.Errorf("an app's stop (%v) and the forwarder's (%v) do not fit in contract.PowerOffTimeout (%v)", app, io, contract.PowerOffTimeout)
	}
}
