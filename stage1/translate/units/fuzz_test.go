package units

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
	"github.com/coreos/go-systemd/v22/unit"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/volplan"
)

// Separators inside one fuzz string: items of a list, and the two halves
// of a pair (a bind's source and target).
const (
	itemSep = "\x1e"
	pairSep = "\x1f"
)

// pathSegments are the path components fuzzPath builds paths of.
var pathSegments = []string{"", ".", "..", "a", "b-c", "%n", "a b", ":", "\n", `\`, "@x=1", "+y", "$HOME", "é"}

// fuzzPath is s, or if s starts with byte 1 the absolute path made of
// the components its other bytes pick: the fuzzer finds "/a/../.." that
// way at once, where it would rarely get two dots in a row by chance.
func fuzzPath(s string) string {
	rest, ok := strings.CutPrefix(s, "\x01")
	if !ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		b.WriteString("/" + pathSegments[int(rest[i])%len(pathSegments)])
	}
	return b.String()
}

func items(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, itemSep)
}

// fuzzIsolators are the isolators a fuzz input can name, by index.
var fuzzIsolators = []types.ACIdentifier{
	types.LinuxCapabilitiesRetainSetName, types.LinuxCapabilitiesRevokeSetName,
	types.LinuxSeccompRetainSetName, types.LinuxSeccompRemoveSetName,
	types.LinuxNoNewPrivilegesName, types.LinuxOOMScoreAdjName, types.LinuxCPUSharesName,
	types.UnixSysctlName, types.ResourceMemoryName, types.ResourceCPUName,
	types.LinuxSELinuxContextName,
}

// fuzzInput is one fuzz case, as the fuzzer passes it.
type fuzzInput struct {
	name, image, exec, env, wd, user, group string
	handler, isolators, binds, metadataURL  string
	supplementaryGID                        int64
	flags                                   uint16
}

// Flag bits of fuzzInput.flags.
const (
	fInteractive = 1 << iota
	fTTY
	fDisableCaps
	fDisableSeccomp
	fDisablePaths
	fReadOnlyRootFS
	fSecondApp
	fSupplementaryGID
)

// pod builds the pod the fuzz input describes: the fuzzed app (and maybe
// a plain second one) with its rootfs at root.
func (in fuzzInput) pod(root string) Pod {
	a := App{
		Name: in.name, ImageName: in.image, RootfsHost: root, MetadataURL: in.metadataURL,
		ReadOnlyRootFS: in.flags&fReadOnlyRootFS != 0,
		App: types.App{
			Exec: items(in.exec), User: in.user, Group: in.group, WorkingDirectory: fuzzPath(in.wd),
		},
	}
	if in.flags&fSupplementaryGID != 0 {
		a.App.SupplementaryGIDs = []int{int(in.supplementaryGID)}
	}
	for _, kv := range items(in.env) {
		name, value, _ := strings.Cut(kv, "=")
		a.App.Environment = append(a.App.Environment, types.EnvironmentVariable{Name: name, Value: value})
	}
	if in.handler != "" {
		name := []string{"pre-start", "post-stop", "on-crash"}[int(in.handler[0])%3]
		a.App.EventHandlers = []types.EventHandler{{Name: name, Exec: items(in.handler[1:])}}
	}
	for _, iso := range items(in.isolators) {
		if iso == "" {
			continue
		}
		b, err := json.Marshal(struct {
			Name  types.ACIdentifier `json:"name"`
			Value json.RawMessage    `json:"value"`
		}{fuzzIsolators[int(iso[0])%len(fuzzIsolators)], json.RawMessage(iso[1:])})
		if err != nil {
			continue // not JSON: no manifest carries it
		}
		var i types.Isolator
		if json.Unmarshal(b, &i) == nil {
			a.App.Isolators = append(a.App.Isolators, i)
		}
	}
	for i, b := range items(in.binds) {
		src, tgt, _ := strings.Cut(b, pairSep)
		a.Binds = append(a.Binds, volplan.Bind{Source: fuzzPath(src), Target: fuzzPath(tgt), ReadOnly: i%2 == 1})
	}
	p := Pod{
		Apps:        []App{a},
		Interactive: in.flags&fInteractive != 0,
		TTY:         in.flags&fTTY != 0,
		Rows:        24, Cols: 80,

		DisableCapabilities: in.flags&fDisableCaps != 0,
		DisableSeccomp:      in.flags&fDisableSeccomp != 0,
		DisablePaths:        in.flags&fDisablePaths != 0,
	}
	if in.flags&fSecondApp != 0 {
		p.Apps = append(p.Apps, simpleApp("other"))
	}
	return p
}

func fuzzRootfs(f *testing.F) string {
	root := filepath.Join(f.TempDir(), "rootfs")
	for name, content := range map[string]string{
		"etc/passwd": testPasswd, "etc/group": testGroup, "bin/sh": "#!/bin/sh\n", "usr/bin/server": "",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	return root
}

// FuzzGenerate: pod and image manifest values are the user's, and must not
// be able to change what the units say beyond the value itself. Whatever
// the app's fields, Generate must not panic; an error is fine; but the
// units it returns must parse (with go-systemd and with a strict reading
// of systemd's syntax, in agreement), contain only the settings the
// generator writes, each single one once, keep the app in its root, and
// give back every value as it was given.
func FuzzGenerate(f *testing.F) {
	j := func(s ...string) string { return strings.Join(s, itemSep) }
	iso := func(i types.ACIdentifier, v string) string {
		return string(rune(slices.Index(fuzzIsolators, i))) + v
	}
	for _, in := range []fuzzInput{
		{name: "web", image: "example.com/web-100%", exec: j("server", "--listen", ":80", "$HOME", "100%", "a b", ""),
			env: j("GREETING=say \"hi\" to $USER, 100% \\o/", "AC_APP_NAME=spoofed", "MULTI=line1\nline2"),
			wd:  "/srv/100%", user: "web", group: "www", handler: "\x00" + j("/bin/prepare", "x y"),
			isolators: j(iso(types.ResourceMemoryName, `{"limit":"256Mi"}`), iso(types.ResourceCPUName, `{"limit":"500m"}`),
				iso(types.LinuxCapabilitiesRetainSetName, `{"set":["CAP_NET_BIND_SERVICE"]}`),
				iso(types.LinuxSeccompRemoveSetName, `{"set":["@docker/default-blacklist","reboot"],"errno":"EPERM"}`),
				iso(types.UnixSysctlName, `{"net.ipv4.ip_forward":"1"}`), iso(types.LinuxOOMScoreAdjName, `100`),
				iso(types.LinuxCPUSharesName, `512`), iso(types.LinuxNoNewPrivilegesName, `true`)),
			binds:       j("/run/stage1/volumes/data"+pairSep+"/srv/data", "/pod/volumes/cache"+pairSep+"/var/cache"),
			metadataURL: "http://169.254.169.254/tok", supplementaryGID: 10, flags: fReadOnlyRootFS | fSecondApp | fSupplementaryGID},
		{name: "sh", exec: "/bin/sh", user: "0", group: "0", flags: fInteractive | fTTY},
		{name: "sh", exec: "sh", user: "/etc/passwd", group: "/bin/sh", flags: fInteractive | fDisableCaps | fDisableSeccomp | fDisablePaths},
		// Values that try to add a setting or leave the app's root.
		{name: "a", exec: j("/bin/a", "x\nExecStartPre=/bin/evil"), user: "0", group: "0"},
		{name: "a", exec: "/bin/a\\", user: "0", group: "0", env: "A=\\\nUser=0"},
		{name: "a", image: "x\n[Service]\nUser=0", exec: "/bin/a", user: "0", group: "0"},
		{name: "a", exec: "/bin/a", user: "0", group: "0", wd: "/srv\nUser=0"},
		{name: "a", exec: "/bin/a", user: "0", group: "0", wd: "/../../etc"},
		{name: "a", exec: "/bin/a", user: "0", group: "0", binds: "/x" + pairSep + "/../../etc"},
		{name: "a", exec: "/bin/a", user: "0", group: "0", wd: "\x01\x03\x04", binds: "\x01\x03" + pairSep + "\x01\x03\x04"},
		{name: "a", exec: "/bin/a", user: "0", group: "0", binds: "/x:/y" + pairSep + "/z"},
		{name: "a", exec: "/bin/a", user: "0", group: "0", binds: "/x" + pairSep + "/y z"},
		{name: "a", exec: "/bin/a", user: "0", group: "0", isolators: iso(types.LinuxCapabilitiesRetainSetName, `{"set":["CAP_SYS_ADMIN\nUser=0"]}`)},
		{name: "a", exec: "/bin/a", user: "0", group: "0", isolators: iso(types.LinuxSeccompRetainSetName, `{"set":["read write"]}`)},
		{name: "a", exec: "/bin/a", user: "0", group: "0", isolators: iso(types.UnixSysctlName, `{"net.a":"1\nExecStart=/x","net.b":"a b"}`)},
		{name: "a", exec: "/bin/a", user: "0", group: "0", metadataURL: "http://x/\n[Unit]"},
		{name: "../a", exec: "/bin/a", user: "0", group: "0"},
		{name: "a", exec: "/bin/a", user: "web\n", group: "www"},
	} {
		f.Add(in.name, in.image, in.exec, in.env, in.wd, in.user, in.group, in.handler, in.isolators, in.binds,
			in.metadataURL, in.supplementaryGID, in.flags)
	}
	root := fuzzRootfs(f)
	f.Fuzz(func(t *testing.T, name, image, exec, env, wd, user, group, handler, isolators, binds, metadataURL string,
		supplementaryGID int64, flags uint16) {
		in := fuzzInput{name, image, exec, env, wd, user, group, handler, isolators, binds, metadataURL, supplementaryGID, flags}
		p := in.pod(root)
		files, err := Generate(p)
		if err != nil {
			return
		}
		units := map[string][]*unit.UnitOption{}
		for _, file := range files {
			if _, dup := units[file.Name]; dup || !validUnitName(file.Name) {
				t.Fatalf("unit file name %q", file.Name)
			}
			units[file.Name] = parseStrict(t, file)
		}
		for _, a := range p.Apps {
			opts, ok := units[contract.AppService(a.Name)]
			if !ok {
				t.Fatalf("no unit for app %q among %v", a.Name, slices.Collect(maps.Keys(units)))
			}
			checkAppUnit(t, p, a, opts)
		}
		checkSysctlUnit(t, units[SysctlService], p)
		// Every app waits for the sysctls, if there are any.
		for _, a := range p.Apps {
			opts := units[contract.AppService(a.Name)]
			if _, sysctls := units[SysctlService]; slices.Contains(values(opts, "Unit", "Requires"), SysctlService) != sysctls {
				t.Fatalf("app %q: Requires=%q, sysctl unit: %v", a.Name, values(opts, "Unit", "Requires"), sysctls)
			}
		}
	})
}

func validUnitName(n string) bool {
	if !strings.HasSuffix(n, ".service") && !strings.HasSuffix(n, ".target") && !strings.HasSuffix(n, ".socket") {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-.@", c) >= 0) {
			return false
		}
	}
	return true
}

// parseStrict reads a unit file as systemd would, refusing what a
// generated file must not have: a continued line, a carriage return, a
// line that is neither a section header nor Name=value. When every line
// fits go-systemd's parser (2 KiB), it must read the same options.
func parseStrict(t *testing.T, f File) []*unit.UnitOption {
	t.Helper()
	var opts []*unit.UnitOption
	section, short := "", true
	lines := strings.Split(string(f.Content), "\n")
	if lines[len(lines)-1] != "" {
		t.Fatalf("%s does not end with a newline", f.Name)
	}
	for _, l := range lines[:len(lines)-1] {
		short = short && len(l) < unit.SYSTEMD_LINE_MAX-1
		switch {
		case l == "":
		case strings.HasSuffix(l, `\`) || strings.ContainsRune(l, '\r'):
			t.Fatalf("%s: line %q would be joined or split by systemd", f.Name, l)
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
		default:
			name, value, ok := strings.Cut(l, "=")
			if !ok || section == "" || name == "" || strings.Trim(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
				t.Fatalf("%s: line %q is not a setting", f.Name, l)
			}
			if strings.TrimSpace(value) != value {
				t.Fatalf("%s: systemd would strip white space around %q", f.Name, value)
			}
			opts = append(opts, unit.NewUnitOption(section, name, value))
		}
	}
	if short {
		got, err := unit.DeserializeOptions(bytes.NewReader(f.Content))
		if err != nil {
			t.Fatalf("%s: go-systemd: %v\n%s", f.Name, err, f.Content)
		}
		if !unit.AllMatch(got, opts) {
			t.Fatalf("%s: go-systemd reads %v, strictly %v", f.Name, got, opts)
		}
	}
	return opts
}

// appSettings are the settings an app unit may have, by section, and how
// many times: 1 exactly once, -1 at most once, 0 any number.
var appSettings = map[string]map[string]int{
	"Unit": {
		"Description": 1,
		"Requires":    0, "After": 0, "Before": 0,
	},
	"Service": {
		"Type": 1, "Restart": 1, "RootDirectory": 1, "WorkingDirectory": 1, "User": 1, "Group": 1,
		"ExecStart": 1, "SyslogIdentifier": 1, "KillMode": 1, "TimeoutStopSec": 1,
		"StandardInput": 1, "StandardOutput": 1, "StandardError": 1,
		"SupplementaryGroups": -1, "MemoryMax": -1, "CPUQuota": -1, "CPUWeight": -1, "OOMScoreAdjust": -1,
		"NoNewPrivileges": -1, "CapabilityBoundingSet": -1, "AmbientCapabilities": -1,
		"SystemCallErrorNumber": -1, "TTYPath": -1, "TTYRows": -1, "TTYColumns": -1,
		"Environment": 0, "ExecStartPre": 0, "ExecStopPost": 0, "SystemCallFilter": 0,
		"ReadOnlyPaths": 0, "InaccessiblePaths": 0, "BindPaths": 0, "BindReadOnlyPaths": 0,
	},
}

func values(opts []*unit.UnitOption, section, name string) []string {
	var v []string
	for _, o := range opts {
		if o.Section == section && o.Name == name {
			v = append(v, o.Value)
		}
	}
	return v
}

// checkAppUnit checks the unit of app a (long: one check after another).
func checkAppUnit(t *testing.T, p Pod, a App, opts []*unit.UnitOption) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("app %q: "+format, append([]any{a.Name}, args...)...)
	}
	counts := map[[2]string]int{}
	for _, o := range opts {
		want, ok := appSettings[o.Section][o.Name]
		if !ok {
			fail("setting [%s] %s=%q is not one the generator writes", o.Section, o.Name, o.Value)
		}
		if strings.ContainsAny(o.Value, "\n\r") {
			fail("%s=%q spans lines", o.Name, o.Value)
		}
		counts[[2]string{o.Section, o.Name}]++
		if n := counts[[2]string{o.Section, o.Name}]; want != 0 && n > 1 {
			fail("%s appears %d times", o.Name, n)
		}
	}
	for section, names := range appSettings {
		for name, want := range names {
			if want == 1 && counts[[2]string{section, name}] != 1 {
				fail("%s appears %d times, want once", name, counts[[2]string{section, name}])
			}
		}
	}
	one := func(section, name string) string { return values(opts, section, name)[0] }

	root := contract.AppRootfs(a.Name)
	for name, want := range map[string]string{
		"RootDirectory": root, "Type": "exec", "Restart": "no", "KillMode": "mixed",
		"TimeoutStopSec": StopTimeout, "SyslogIdentifier": a.Name,
	} {
		if got := one("Service", name); got != want {
			fail("%s=%q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"Requires", "After", "Before"} {
		for _, line := range values(opts, "Unit", name) {
			for _, v := range strings.Fields(line) {
				if v != contract.IOService && v != contract.JournalService && v != SysctlService &&
					!slices.Contains(strings.Fields(contract.JournalSockets), v) {
					fail("%s=%q", name, v)
				}
			}
		}
	}
	if d, err := expandSpecifiers(one("Unit", "Description")); err != nil || !strings.HasPrefix(d, "Application "+a.Name) {
		fail("Description=%q (%v)", one("Unit", "Description"), err)
	}

	// The working directory, as the manifest gave it, inside the root.
	wd, err := expandSpecifiers(one("Service", "WorkingDirectory"))
	wantWD := a.App.WorkingDirectory
	if wantWD == "" {
		wantWD = "/"
	}
	if err != nil || wd != wantWD || !path.IsAbs(wd) || slices.Contains(strings.Split(wd, "/"), "..") {
		fail("WorkingDirectory=%q (%v), the manifest says %q", one("Service", "WorkingDirectory"), err, a.App.WorkingDirectory)
	}

	creds, err := ResolveCredentials(a)
	if err != nil {
		fail("generated, but credentials do not resolve: %v", err)
	}
	if one("Service", "User") != strconv.FormatUint(uint64(creds.UID), 10) || one("Service", "Group") != strconv.FormatUint(uint64(creds.GID), 10) {
		fail("User=%s Group=%s, credentials %+v", one("Service", "User"), one("Service", "Group"), creds)
	}
	if v := values(opts, "Service", "SupplementaryGroups"); len(creds.SupplementaryGIDs) > 0 != (len(v) == 1) ||
		len(v) == 1 && v[0] != joinIDs(creds.SupplementaryGIDs) {
		fail("SupplementaryGroups=%q, credentials %+v", v, creds)
	}

	checkCommands(t, a, opts)
	checkEnvironment(t, a, opts)
	checkPaths(t, a, opts)
	checkIsolatorSettings(t, a, opts)
	checkStreams(t, p, a, opts)
}

// checkCommands: every Exec line gives back the manifest's command, the
// executable made absolute.
func checkCommands(t *testing.T, a App, opts []*unit.UnitOption) {
	t.Helper()
	want := map[string][][]string{"ExecStart": {append([]string{""}, a.App.Exec...)}}
	for _, h := range a.App.EventHandlers {
		setting, prefix := "ExecStartPre", ""
		if h.Name == "post-stop" {
			setting, prefix = "ExecStopPost", "-"
		}
		want[setting] = append(want[setting], append([]string{prefix}, h.Exec...))
	}
	for _, setting := range []string{"ExecStart", "ExecStartPre", "ExecStopPost"} {
		got := values(opts, "Service", setting)
		if len(got) != len(want[setting]) {
			t.Fatalf("app %q: %d %s lines %q, want %d", a.Name, len(got), setting, got, len(want[setting]))
		}
		for i, line := range got {
			prefix, argv, err := decodeExec(line)
			if err != nil {
				t.Fatalf("app %q: %s=%s: %v", a.Name, setting, line, err)
			}
			w := want[setting][i]
			exe := w[1]
			if !path.IsAbs(exe) && len(argv) > 0 && path.IsAbs(argv[0]) && path.Base(argv[0]) == exe {
				exe = argv[0] // found in the app's PATH
			}
			if !slices.Equal(append([]string{prefix}, argv...), append([]string{w[0], exe}, w[2:]...)) {
				t.Fatalf("app %q: %s=%s reads as %q %q, the manifest says %q", a.Name, setting, line, prefix, argv, w)
			}
		}
	}
}

// checkEnvironment: the app gets exactly its appc environment.
func checkEnvironment(t *testing.T, a App, opts []*unit.UnitOption) {
	t.Helper()
	got := map[string]string{}
	for _, v := range values(opts, "Service", "Environment") {
		name, value, err := decodeEnvironment(v)
		if _, dup := got[name]; err != nil || dup {
			t.Fatalf("app %q: Environment=%s (%v, twice: %v)", a.Name, v, err, dup)
		}
		got[name] = value
	}
	want := map[string]string{}
	for _, kv := range AppEnvironment(a) {
		want[kv.Name] = kv.Value
	}
	if !maps.Equal(got, want) {
		t.Fatalf("app %q: environment %q, want %q", a.Name, got, want)
	}
}

// checkPaths: what must stay in the app's root does.
func checkPaths(t *testing.T, a App, opts []*unit.UnitOption) {
	t.Helper()
	root := contract.AppRootfs(a.Name)
	inRoot := func(p string) bool { return path.Clean(p) == p && (p == root || strings.HasPrefix(p, root+"/")) }
	for _, name := range []string{"ReadOnlyPaths", "InaccessiblePaths"} {
		for _, v := range values(opts, "Service", name) {
			if !inRoot(strings.TrimPrefix(v, "-")) {
				t.Fatalf("app %q: %s=%q is not in its root %s", a.Name, name, v, root)
			}
		}
	}
	if a.ReadOnlyRootFS != slices.Contains(values(opts, "Service", "ReadOnlyPaths"), root) {
		t.Fatalf("app %q: read-only rootfs %v, ReadOnlyPaths=%q", a.Name, a.ReadOnlyRootFS, values(opts, "Service", "ReadOnlyPaths"))
	}
	var rw, ro []string
	for _, b := range a.Binds {
		if b.ReadOnly {
			ro = append(ro, b.Source+":"+b.Target)
		} else {
			rw = append(rw, b.Source+":"+b.Target)
		}
	}
	for name, want := range map[string][]string{"BindPaths": rw, "BindReadOnlyPaths": ro} {
		got := values(opts, "Service", name)
		if !slices.Equal(got, want) {
			t.Fatalf("app %q: %s=%q, the binds say %q", a.Name, name, got, want)
		}
		for _, v := range got {
			// The target is taken inside the root: clean, it stays there.
			parts := strings.Split(v, ":")
			if len(parts) != 2 || !path.IsAbs(parts[0]) || path.Clean(parts[0]) != parts[0] ||
				!path.IsAbs(parts[1]) || path.Clean(parts[1]) != parts[1] || !inRoot(path.Join(root, parts[1])) {
				t.Fatalf("app %q: %s=%q is not a clean source:target inside the root", a.Name, name, v)
			}
		}
	}
}

// checkIsolatorSettings: the confinement settings are made of words of
// their own syntax only.
func checkIsolatorSettings(t *testing.T, a App, opts []*unit.UnitOption) {
	t.Helper()
	words := func(name string, ok func(string) bool) {
		for _, v := range values(opts, "Service", name) {
			for i, w := range strings.Split(v, " ") {
				if i == 0 {
					w = strings.TrimPrefix(w, "~")
				}
				if !ok(w) {
					t.Fatalf("app %q: %s=%q has %q", a.Name, name, v, w)
				}
			}
		}
	}
	// in accepts a decimal number from lo to hi, as systemd reads the
	// setting (out of range, it would ignore the setting).
	in := func(lo, hi int64) func(string) bool {
		return func(s string) bool { n, err := strconv.ParseInt(s, 10, 64); return err == nil && lo <= n && n <= hi }
	}
	isCap := func(s string) bool { return slices.Contains(knownCapabilities, s) }
	words("CapabilityBoundingSet", isCap)
	words("AmbientCapabilities", isCap)
	words("SystemCallFilter", func(s string) bool {
		g, group := strings.CutPrefix(s, "@")
		return isSyscallName(g) || group && strings.Trim(g, "abcdefghijklmnopqrstuvwxyz-") == ""
	})
	words("SystemCallErrorNumber", in(1, 4095))
	words("MemoryMax", in(1, math.MaxInt64))
	words("CPUWeight", in(1, 10000))
	words("OOMScoreAdjust", in(-1000, 1000))
	words("CPUQuota", func(s string) bool { n, ok := strings.CutSuffix(s, "%"); return ok && in(1, math.MaxInt64)(n) })
	words("NoNewPrivileges", func(s string) bool { return s == "yes" })
	words("SupplementaryGroups", in(0, math.MaxUint32-1))
}

// checkStreams: the app's standard streams are the pod's, whatever the app.
func checkStreams(t *testing.T, p Pod, a App, opts []*unit.UnitOption) {
	t.Helper()
	in, out, errs := "null", "file:"+contract.AppFIFO(a.Name, contract.Stdout), "file:"+contract.AppFIFO(a.Name, contract.Stderr)
	switch {
	case p.Interactive && p.TTY:
		in, out, errs = "tty", "tty", "tty"
	case p.Interactive:
		in = "file:" + contract.AppFIFO(a.Name, contract.Stdin)
	}
	for name, want := range map[string]string{"StandardInput": in, "StandardOutput": out, "StandardError": errs} {
		if got := values(opts, "Service", name); got[0] != want {
			t.Fatalf("app %q: %s=%q, want %q", a.Name, name, got[0], want)
		}
	}
	if tty := values(opts, "Service", "TTYPath"); (p.Interactive && p.TTY) != (len(tty) == 1) || len(tty) == 1 && tty[0] != contract.TTYPath {
		t.Fatalf("app %q: TTYPath=%q", a.Name, tty)
	}
}

// checkSysctlUnit: the sysctl unit runs our program with exactly the
// pod's parameters, one argument each.
func checkSysctlUnit(t *testing.T, opts []*unit.UnitOption, p Pod) {
	t.Helper()
	want, err := podSysctls(p)
	if err != nil {
		t.Fatalf("generated, but the sysctls do not merge: %v", err)
	}
	if len(want) == 0 {
		if opts != nil {
			t.Fatal("a sysctl unit without sysctls")
		}
		return
	}
	exec := values(opts, "Service", "ExecStart")
	if len(exec) != 1 {
		t.Fatalf("sysctl unit ExecStart %q", exec)
	}
	_, argv, err := decodeExec(exec[0])
	if err != nil || len(argv) < 2 || argv[0] != contract.GuestProgram || argv[1] != "sysctl" {
		t.Fatalf("sysctl ExecStart=%s (%v)", exec[0], err)
	}
	got := map[string]string{}
	for _, kv := range argv[2:] {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	if len(got) != len(argv)-2 || !maps.Equal(got, want) {
		t.Fatalf("sysctl arguments %q, want %q", argv[2:], want)
	}
}
