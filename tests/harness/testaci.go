package harness

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/rootfs-builder/elfdeps"
)

// BusyboxPath is the static busybox that test images are made of (Debian's
// busybox-static). A dynamic one would not run inside an app rootfs that has
// no libc.
var BusyboxPath = "/bin/busybox"

// TestImagePrefix names test images: an image is TestImagePrefix+Name. rkt
// names an app after the last path component of its image name, so the app
// in the pod is called Name without any --name flag.
const TestImagePrefix = "example.com/test/"

// AppSpec describes a test app image: one busybox rootfs, one app.
type AppSpec struct {
	Name              string // app name in the pod; the image is TestImagePrefix+Name
	Exec              []string
	User, Group       string // default "0"
	Env               []types.EnvironmentVariable
	WorkingDirectory  string
	SupplementaryGIDs []int
	EventHandlers     []types.EventHandler
	Isolators         types.Isolators
	// Files adds or replaces files in the rootfs: absolute path -> content.
	// Content starting with "#!" is made executable; a path ending in "/"
	// is an (empty) directory, mode 0755.
	Files map[string]string
	// Symlinks adds symbolic links to the rootfs: absolute path -> target.
	Symlinks map[string]string
	// Annotations and MountPoints go to the image manifest as they are.
	Annotations types.Annotations
	MountPoints []types.MountPoint
	Ports       []types.Port
	// HostBinaries are programs of this host (absolute paths) copied to the
	// same paths in the rootfs together with every shared library and the
	// program interpreter they load (walked with rootfs-builder/elfdeps).
	HostBinaries []string
}

// Default account files of test images: root, and an unprivileged "user"
// (uid 1000) whose primary group is "user" (gid 1000); group "users" is 100
// with no members, so supplementary groups come only from the manifest.
const (
	defaultPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"user:x:1000:1000:user:/home/user:/bin/sh\n"
	defaultGroup = "root:x:0:\n" +
		"users:x:100:\n" +
		"user:x:1000:\n"
)

// imageTime is the mtime of every entry, so the same spec gives the same
// bytes (and the same image ID) every time.
var imageTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

var busybox struct {
	once    sync.Once
	data    []byte
	applets []string
	err     error
}

// loadBusybox reads the busybox binary once per test binary and asks it for
// its applet list, so that every applet works in the images.
func loadBusybox() ([]byte, []string, error) {
	busybox.once.Do(func() {
		f, err := elf.Open(BusyboxPath)
		if err != nil {
			busybox.err = fmt.Errorf("%s (package busybox-static): %w", BusyboxPath, err)
			return
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				busybox.err = fmt.Errorf("%s is dynamically linked; test images need busybox-static", BusyboxPath)
			}
		}
		f.Close()
		if busybox.err != nil {
			return
		}
		out, err := exec.Command(BusyboxPath, "--list").Output()
		if err != nil {
			busybox.err = fmt.Errorf("%s --list: %w", BusyboxPath, err)
			return
		}
		for _, a := range strings.Fields(string(out)) {
			if a != "busybox" && !strings.Contains(a, "/") {
				busybox.applets = append(busybox.applets, a)
			}
		}
		busybox.data, busybox.err = os.ReadFile(BusyboxPath)
	})
	return busybox.data, busybox.applets, busybox.err
}

// BuildACI writes <tmp>/<name>.aci, a plain-tar ACI with a busybox rootfs
// and one app as described by spec, and returns its path.
func BuildACI(t testing.TB, spec AppSpec) string {
	t.Helper()
	b, err := testImage(spec)
	if err != nil {
		t.Fatalf("build test image %q: %v", spec.Name, err)
	}
	p := filepath.Join(t.TempDir(), spec.Name+".aci")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testImage returns the bytes of the ACI BuildACI writes.
func testImage(spec AppSpec) ([]byte, error) {
	name, err := types.NewACName(spec.Name)
	if err != nil {
		return nil, fmt.Errorf("app name: %w", err)
	}
	imgName, err := types.NewACIdentifier(TestImagePrefix + name.String())
	if err != nil {
		return nil, err
	}
	user, group := spec.User, spec.Group
	if user == "" {
		user = "0"
	}
	if group == "" {
		group = "0"
	}
	labels := types.Labels{
		{Name: "version", Value: "1.0.0"},
		{Name: "os", Value: "linux"},
		{Name: "arch", Value: "amd64"},
	}
	im := schema.ImageManifest{
		ACKind:    schema.ImageManifestKind,
		ACVersion: schema.AppContainerVersion,
		Name:      *imgName,
		Labels:    labels,
		App: &types.App{
			Exec:              spec.Exec,
			User:              user,
			Group:             group,
			SupplementaryGIDs: spec.SupplementaryGIDs,
			WorkingDirectory:  spec.WorkingDirectory,
			Environment:       spec.Env,
			EventHandlers:     spec.EventHandlers,
			Isolators:         spec.Isolators,
			MountPoints:       spec.MountPoints,
			Ports:             spec.Ports,
		},
		Annotations: spec.Annotations,
	}
	manifest, err := json.Marshal(im)
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}

	bin, applets, err := loadBusybox()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := newACIWriter(&buf)
	w.File("manifest", 0o644, manifest)
	w.Dir("rootfs", 0o755)
	w.File("rootfs/bin/busybox", 0o755, bin)
	for _, a := range applets {
		w.Symlink("rootfs/bin/"+a, "busybox")
	}
	files := map[string]string{
		"/etc/passwd": defaultPasswd,
		"/etc/group":  defaultGroup,
	}
	for p, c := range spec.Files {
		files[p] = c
	}
	if err := addHostBinaries(w, spec.HostBinaries); err != nil {
		return nil, err
	}
	w.Dir("rootfs/tmp", 0o1777)
	links := make([]string, 0, len(spec.Symlinks))
	for p := range spec.Symlinks {
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("symlink %q: path must be absolute", p)
		}
		links = append(links, p)
	}
	sort.Strings(links)
	for _, p := range links {
		w.Symlink("rootfs"+path.Clean(p), spec.Symlinks[p])
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("file %q: path must be absolute", p)
		}
		name := "rootfs" + path.Clean(p)
		switch c := files[p]; {
		case strings.HasSuffix(p, "/"):
			w.Dir(name, 0o755)
		case strings.HasPrefix(c, "#!"):
			w.File(name, 0o755, []byte(c))
		default:
			w.File(name, 0o644, []byte(c))
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// addHostBinaries copies host programs and what they load into the rootfs,
// each under the path the loader looks for it by (a host symlink becomes a
// regular file there).
func addHostBinaries(w *aciWriter, bins []string) error {
	if len(bins) == 0 {
		return nil
	}
	for _, b := range bins {
		if !path.IsAbs(b) {
			return fmt.Errorf("host binary %q: path must be absolute", b)
		}
	}
	deps, err := elfdeps.Resolver{}.Resolve(bins...)
	if err != nil {
		return err
	}
	files := slices.Clone(bins)
	for _, d := range deps {
		files = append(files, d.Path)
	}
	sort.Strings(files)
	for _, f := range slices.Compact(files) {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		w.File("rootfs"+path.Clean(f), 0o755, data)
	}
	return nil
}

// aciWriter writes a tar with root-owned entries and fixed times, adding
// each parent directory before the first entry under it.
type aciWriter struct {
	tw   *tar.Writer
	dirs map[string]bool
	err  error
}

func newACIWriter(w *bytes.Buffer) *aciWriter {
	return &aciWriter{tw: tar.NewWriter(w), dirs: map[string]bool{".": true}}
}

func (w *aciWriter) header(h *tar.Header, data []byte) {
	if w.err != nil {
		return
	}
	w.parents(strings.TrimSuffix(h.Name, "/"))
	h.ModTime = imageTime
	h.Format = tar.FormatPAX
	if w.err = w.tw.WriteHeader(h); w.err == nil && data != nil {
		_, w.err = w.tw.Write(data)
	}
}

func (w *aciWriter) parents(name string) {
	dir := path.Dir(name)
	if w.dirs[dir] {
		return
	}
	w.Dir(dir, 0o755)
}

// Dir adds a directory (once; later calls for the same path are ignored).
func (w *aciWriter) Dir(name string, mode int64) {
	if w.dirs[name] {
		return
	}
	w.header(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: mode}, nil)
	w.dirs[name] = true
}

// File adds a regular file.
func (w *aciWriter) File(name string, mode int64, data []byte) {
	w.header(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data))}, data)
}

// Symlink adds a symbolic link.
func (w *aciWriter) Symlink(name, target string) {
	w.header(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}, nil)
}

// Close ends the archive and reports the first error.
func (w *aciWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	return w.tw.Close()
}
