// Package elfdeps finds the shared libraries an ELF program needs by walking
// its dynamic section (DT_NEEDED, DT_RUNPATH/DT_RPATH) transitively, the way
// the dynamic loader would, so images carry exactly what their programs load
// and no hand-kept list can drift from the installed packages.
package elfdeps

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNotFound is returned when a needed library is in none of the search
// directories.
var ErrNotFound = errors.New("shared library not found")

// DefaultSearchPath is where Debian's x86_64 loader looks after RUNPATH.
var DefaultSearchPath = []string{
	"/lib/x86_64-linux-gnu",
	"/usr/lib/x86_64-linux-gnu",
	"/lib64",
	"/usr/lib64",
	"/lib",
	"/usr/lib",
}

// Resolver walks dependencies. SearchPath defaults to DefaultSearchPath.
type Resolver struct {
	SearchPath []string
}

// Dep is one file a program needs at run time.
type Dep struct {
	// Path is where the loader looks for the library (directory of the
	// match joined with the name it was asked for); a symlink on the host
	// is kept under this name in the image.
	Path string
	// Interpreter is true for the program interpreter (PT_INTERP).
	Interpreter bool
}

// Resolve returns the libraries and the program interpreter needed by the
// given programs, sorted by path, without the programs themselves.
func (r Resolver) Resolve(programs ...string) ([]Dep, error) {
	search := r.SearchPath
	if len(search) == 0 {
		search = DefaultSearchPath
	}
	seen := map[string]Dep{}
	// loaded maps a requested library name to the file that satisfied it:
	// like ld.so, a name already loaded (perhaps found through another
	// object's RUNPATH) is not searched for again.
	loaded := map[string]string{}
	queue := append([]string(nil), programs...)
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		info, err := readELF(path)
		if err != nil {
			return nil, err
		}
		if info.interp != "" {
			if _, ok := seen[info.interp]; !ok {
				seen[info.interp] = Dep{Path: info.interp, Interpreter: true}
				queue = append(queue, info.interp)
			}
		}
		dirs := append(expandOrigin(info.runpath, path), search...)
		for _, name := range info.needed {
			if _, ok := loaded[name]; ok {
				continue
			}
			lib, err := find(name, dirs)
			if err != nil {
				return nil, fmt.Errorf("%s needs %s: %w", path, name, err)
			}
			loaded[name] = lib
			if _, ok := seen[lib]; ok {
				continue
			}
			// The interpreter may also be named in DT_NEEDED under
			// another path; one copy of a file is enough.
			if dup := sameFile(lib, seen); dup {
				continue
			}
			seen[lib] = Dep{Path: lib}
			queue = append(queue, lib)
		}
	}
	deps := make([]Dep, 0, len(seen))
	for _, d := range seen {
		deps = append(deps, d)
	}
	sort.Slice(deps, func(i, j int) bool { return deps[i].Path < deps[j].Path })
	return deps, nil
}

type elfInfo struct {
	interp  string
	needed  []string
	runpath []string
}

func readELF(path string) (elfInfo, error) {
	f, err := elf.Open(path)
	if err != nil {
		return elfInfo{}, fmt.Errorf("read ELF %s: %w", path, err)
	}
	defer f.Close()
	var info elfInfo
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return elfInfo{}, fmt.Errorf("read interpreter of %s: %w", path, err)
			}
			info.interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if info.needed, err = f.ImportedLibraries(); err != nil {
		return elfInfo{}, fmt.Errorf("read DT_NEEDED of %s: %w", path, err)
	}
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, err := f.DynString(tag)
		if err != nil {
			// Static binaries have no dynamic section at all.
			continue
		}
		for _, v := range vals {
			info.runpath = append(info.runpath, filepath.SplitList(v)...)
		}
	}
	return info, nil
}

func expandOrigin(dirs []string, program string) []string {
	origin := filepath.Dir(program)
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		d = strings.ReplaceAll(d, "${ORIGIN}", origin)
		out = append(out, strings.ReplaceAll(d, "$ORIGIN", origin))
	}
	return out
}

func find(name string, dirs []string) (string, error) {
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return name, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s (searched %s)", ErrNotFound, name, strings.Join(dirs, ":"))
}

func sameFile(path string, seen map[string]Dep) bool {
	a, err := os.Stat(path)
	if err != nil {
		return false
	}
	for p := range seen {
		if b, err := os.Stat(p); err == nil && os.SameFile(a, b) {
			return true
		}
	}
	return false
}
