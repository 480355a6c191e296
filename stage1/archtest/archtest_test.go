package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Layers of the module's stage1 code. Packages elsewhere (rootfs-builder,
// tests, tools) belong to none and are not checked.
const (
	host      = "host"      // stage1/host/... and the entry points rkt runs on the host
	guest     = "guest"     // stage1/guest/... and its main, stage1-guest
	translate = "translate" // stage1/translate/...: pure translators
	shared    = "shared"    // every other stage1/... package: contract, agentproto, cli, small utilities
)

// hostEntryPoints are the host programs' main packages.
var hostEntryPoints = []string{"init", "enter", "gc", "stop", "jailer", "templates"}

// mayUse lists the layers a layer's packages may depend on within the
// module (anything outside the module is allowed).
var mayUse = map[string][]string{
	host:      {host, translate, shared},
	guest:     {guest, shared},
	translate: {translate, shared},
	shared:    {shared},
}

var ruleText = map[string]string{
	host:      "the host side (stage1/host/..., " + strings.Join(hostEntryPoints, ", ") + ") may use only the host side, stage1/translate/... and the shared stage1 packages",
	guest:     "the guest side (stage1/guest/..., stage1-guest) may use only the guest side and the shared stage1 packages",
	translate: "stage1/translate/... may use only stage1/translate/... and the shared stage1 packages",
	shared:    "a shared stage1 package (contract, agentproto, cli, utilities) may use only shared stage1 packages",
}

// layer is the layer of the package at rel, its path inside the module;
// "" for a package outside every layer.
func layer(rel string) string {
	switch {
	case under(rel, "stage1/host") || slices.Contains(hostEntryPoints, rel):
		return host
	case under(rel, "stage1/guest") || rel == "stage1-guest":
		return guest
	case under(rel, "stage1/translate"):
		return translate
	case under(rel, "stage1"):
		return shared
	}
	return ""
}

func under(rel, dir string) bool { return rel == dir || strings.HasPrefix(rel, dir+"/") }

// pkg is what go list -json says of a package, as far as the check needs.
type pkg struct {
	ImportPath   string
	Imports      []string
	Deps         []string // transitive, without test imports
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// violations checks the import graph of module (every package go list
// -deps listed) and returns one message per package and forbidden
// dependency, naming the chain of imports that leads to it. A package's
// tests count: their imports are the package's too.
func violations(module string, pkgs []pkg) []string {
	byPath := map[string]*pkg{}
	for i := range pkgs {
		byPath[pkgs[i].ImportPath] = &pkgs[i]
	}
	rel := func(p string) (string, bool) {
		if p == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(p, module+"/")
		return r, ok
	}
	var msgs []string
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok || layer(from) == "" {
			continue
		}
		l := layer(from)
		// Everything p depends on, its tests' imports included.
		deps := slices.Clone(p.Deps)
		for _, t := range append(slices.Clone(p.TestImports), p.XTestImports...) {
			if t == p.ImportPath {
				continue
			}
			deps = append(deps, t)
			if tp := byPath[t]; tp != nil {
				deps = append(deps, tp.Deps...)
			}
		}
		slices.Sort(deps)
		for _, d := range slices.Compact(deps) {
			to, ok := rel(d)
			if !ok || slices.Contains(mayUse[l], layer(to)) {
				continue
			}
			msgs = append(msgs, fmt.Sprintf("%s depends on %s: %s; %s",
				from, to, chain(byPath, p.ImportPath, d, rel), ruleText[l]))
		}
	}
	return msgs
}

// chain is the shortest import path from p to d, in words: "a imports b,
// which imports c". The first step may be an import of p's tests.
func chain(byPath map[string]*pkg, p, d string, rel func(string) (string, bool)) string {
	name := func(s string) string { r, _ := rel(s); return r }
	start := byPath[p]
	prev := map[string]string{}
	testOnly := map[string]bool{}
	var queue []string
	for _, list := range [][]string{start.Imports, start.TestImports, start.XTestImports} {
		for _, i := range list {
			if _, seen := prev[i]; !seen && i != p {
				prev[i] = p
				testOnly[i] = !slices.Contains(start.Imports, i)
				queue = append(queue, i)
			}
		}
	}
	for len(queue) > 0 && prev[d] == "" {
		cur := queue[0]
		queue = queue[1:]
		if c := byPath[cur]; c != nil {
			for _, i := range c.Imports {
				if _, seen := prev[i]; !seen {
					prev[i] = cur
					queue = append(queue, i)
				}
			}
		}
	}
	if prev[d] == "" {
		return "(no import path found)"
	}
	var path []string
	for cur := d; cur != p; cur = prev[cur] {
		path = append(path, cur)
	}
	slices.Reverse(path)
	verb := " imports "
	if testOnly[path[0]] {
		verb = "'s tests import "
	}
	var b strings.Builder
	b.WriteString(name(p) + verb + name(path[0]))
	for _, s := range path[1:] {
		b.WriteString(", which imports " + name(s))
	}
	return b.String()
}

func goCmd(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// TestImportRules checks the module's real import graph.
func TestImportRules(t *testing.T) {
	mod := strings.Fields(string(goCmd(t, ".", "list", "-m", "-f", "{{.Path}} {{.Dir}}")))
	if len(mod) != 2 {
		t.Fatalf("go list -m: %q", mod)
	}
	module, root := mod[0], mod[1]
	watchTree(t, root)

	// -e: a package that does not build (being rewritten) still has
	// its imports listed.
	dec := json.NewDecoder(bytes.NewReader(goCmd(t, root, "list", "-e", "-deps", "-json", module+"/...")))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Error != nil {
			t.Logf("(go list: %s: %s)", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	// The graph is the real one, with every layer in it.
	seen := map[string]bool{}
	for _, p := range pkgs {
		if r, ok := strings.CutPrefix(p.ImportPath, module+"/"); ok {
			seen[layer(r)] = true
		}
	}
	for _, l := range []string{host, guest, translate, shared} {
		if !seen[l] {
			t.Fatalf("go list found no %s package in %s: is the check looking at the right module?", l, module)
		}
	}
	for _, m := range violations(module, pkgs) {
		t.Error(m)
	}
}

// watchTree opens every directory of the module. go test reuses a passing
// result while the files the test itself opened are unchanged, and go list
// reads the sources in a process of its own: without this, a cached pass
// would hide an import added since.
func watchTree(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "build" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The check itself, on made-up graphs: it must catch each kind of
// violation, name the package and the import, and let the allowed through.
func TestViolations(t *testing.T) {
	const m = "example.com/m"
	p := func(path string, imports []string, deps ...string) pkg {
		q := pkg{ImportPath: m + "/" + path}
		for _, i := range imports {
			q.Imports = append(q.Imports, m+"/"+i)
		}
		for _, d := range deps {
			q.Deps = append(q.Deps, m+"/"+d)
		}
		q.Deps = append(q.Deps, "fmt") // outside the module: never checked
		return q
	}
	allowed := []pkg{
		p("stage1/contract", nil),
		p("stage1/syncio", nil),
		p("stage1/agentproto", []string{"stage1/contract"}, "stage1/contract"),
		p("stage1/translate/qemu", []string{"stage1/contract"}, "stage1/contract"),
		p("stage1/host/hypervisor", []string{"stage1/translate/qemu"}, "stage1/translate/qemu", "stage1/contract"),
		p("init", []string{"stage1/host/hypervisor", "stage1/syncio"}, "stage1/host/hypervisor", "stage1/translate/qemu", "stage1/contract", "stage1/syncio"),
		p("stage1/guest", []string{"stage1/agentproto", "stage1/syncio"}, "stage1/agentproto", "stage1/contract", "stage1/syncio"),
		p("stage1-guest", []string{"stage1/guest"}, "stage1/guest", "stage1/agentproto", "stage1/contract", "stage1/syncio"),
		p("tests", []string{"stage1/guest", "stage1/host/hypervisor"}, "stage1/guest", "stage1/host/hypervisor"),
	}
	if v := violations(m, allowed); len(v) > 0 {
		t.Errorf("allowed graph flagged:\n%s", strings.Join(v, "\n"))
	}

	withTestImport := p("stage1/guest/sub", nil)
	withTestImport.XTestImports = []string{m + "/stage1/guest/sub", m + "/stage1/host/hypervisor"}
	for _, tc := range []struct {
		name string
		pkgs []pkg
		want string
	}{
		{"host imports guest", []pkg{p("stage1/host/supervisor", []string{"stage1/guest"}, "stage1/guest"), p("stage1/guest", nil)},
			"stage1/host/supervisor depends on stage1/guest: stage1/host/supervisor imports stage1/guest; the host side"},
		{"entry point imports guest", []pkg{p("gc", []string{"stage1/guest"}, "stage1/guest"), p("stage1/guest", nil)},
			"gc depends on stage1/guest: gc imports stage1/guest; the host side"},
		{"host reaches guest through host", []pkg{
			p("stop", []string{"stage1/host/podstop"}, "stage1/host/podstop", "stage1/guest"),
			p("stage1/host/podstop", []string{"stage1/guest"}, "stage1/guest"),
			p("stage1/guest", nil)},
			"stop depends on stage1/guest: stop imports stage1/host/podstop, which imports stage1/guest; the host side"},
		{"guest imports host", []pkg{p("stage1/guest", []string{"stage1/host/network"}, "stage1/host/network"), p("stage1/host/network", nil)},
			"stage1/guest depends on stage1/host/network: stage1/guest imports stage1/host/network; the guest side"},
		{"guest main imports translate", []pkg{p("stage1-guest", []string{"stage1/translate/units"}, "stage1/translate/units"), p("stage1/translate/units", nil)},
			"stage1-guest depends on stage1/translate/units: stage1-guest imports stage1/translate/units; the guest side"},
		{"guest tests import host", []pkg{withTestImport, p("stage1/host/hypervisor", nil)},
			"stage1/guest/sub depends on stage1/host/hypervisor: stage1/guest/sub's tests import stage1/host/hypervisor; the guest side"},
		{"translate imports host", []pkg{p("stage1/translate/qemu", []string{"stage1/host/pod"}, "stage1/host/pod"), p("stage1/host/pod", nil)},
			"stage1/translate/qemu depends on stage1/host/pod: stage1/translate/qemu imports stage1/host/pod; stage1/translate/..."},
		{"contract imports translate", []pkg{p("stage1/contract", []string{"stage1/translate/sizing"}, "stage1/translate/sizing"), p("stage1/translate/sizing", nil)},
			"stage1/contract depends on stage1/translate/sizing: stage1/contract imports stage1/translate/sizing; a shared stage1 package"},
		{"agentproto imports guest", []pkg{p("stage1/agentproto", []string{"stage1/guest"}, "stage1/guest"), p("stage1/guest", nil)},
			"stage1/agentproto depends on stage1/guest: stage1/agentproto imports stage1/guest; a shared stage1 package"},
		{"guest imports a package outside stage1", []pkg{p("stage1/guest", []string{"rootfs-builder/tree"}, "rootfs-builder/tree"), p("rootfs-builder/tree", nil)},
			"stage1/guest depends on rootfs-builder/tree: stage1/guest imports rootfs-builder/tree; the guest side"},
	} {
		v := violations(m, tc.pkgs)
		if len(v) == 0 || !strings.HasPrefix(v[0], tc.want) {
			t.Errorf("%s: got %q, want a message starting %q", tc.name, v, tc.want)
		}
	}
}
