package harness

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"
)

// What rkt v1.30.0 writes and passes (the stage1 contract).
const (
	// RktVersion is what rkt puts in a pod manifest's acVersion (its own
	// version, not the appc spec's).
	RktVersion = "1.30.0"
	// DefaultLocalConfig is rkt's --local-config default.
	DefaultLocalConfig = "/etc/rkt"

	annStage1           = "coreos.com/rkt/stage1/"
	annInterfaceVersion = annStage1 + "interface-version"
	annPodMutable       = annStage1 + "mutable"

	// File modes rkt uses for what it writes in a pod directory.
	podDirPerm  = 0o750
	podFilePerm = 0o640
)

// Stage0 stands in for the rkt binary: it prepares pod directories exactly as
// `rkt prepare` does (rkt's default overlay mode, or --no-overlay with
// PodOpts.NoOverlay) and hands them to the stage1 entry points with rkt's
// argv, cwd, environment, lock and exec semantics. It is safe for use by
// parallel subtests.
//
// Where it knowingly differs from rkt, and why that does not hide stage1
// bugs:
//   - There is no image store, fetching or signature checking; image IDs are
//     computed the way rkt's store computes them.
//   - The lock is released between Prepare and Run and retaken, as with
//     `rkt prepare` + `rkt run-prepared`; `rkt run` holds it throughout.
//     The stage1 cannot tell the difference.
//   - rkt execs the run entry point; here it is a child in its own process
//     group (so a timeout can kill everything it started), holding the only
//     copy of the lock, so the lock lives exactly as long as it does.
//   - GC behaves as `rkt gc --grace-period=0`. --mds-register is
//     RunOpts.MDSToken plus, when a test wants the service, a
//     MetadataService (mds.go) with the pod registered under that token.
type Stage0 struct {
	// Dir is rkt's --dir (default /var/lib/rkt): pods/ and cas/ live here.
	Dir string
	// Stage1ACI is the stage1 image every pod of this Stage0 uses.
	Stage1ACI string

	mu    sync.Mutex
	trees map[string]*imageTree // by ACI path
	pods  []*Pod                // every pod prepared, for the final cleanup
}

// imageTree is an image rendered into the tree store, where rkt keeps it:
// the stage1 runs the enter entry point from there, and in overlay mode it
// is the read-only lower layer of the pod's stage1 and app root filesystems.
type imageTree struct {
	info *imageInfo
	id   string // the tree store ID (stage1TreeStoreID, appsinfo/<app>/treeStoreID)
}

// NewStage0 returns a Stage0 for the built stage1-kvm.aci.
func NewStage0(t testing.TB) *Stage0 {
	t.Helper()
	return NewStage0With(t, ACI(t))
}

// NewStage0With returns a Stage0 whose pods use the given stage1 image.
//
// Its Dir is a fresh directory directly under $TMPDIR, not t.TempDir(): test
// names make those paths long, and a stage1 that puts UNIX sockets in the pod
// directory must stay under the 108-byte sun_path limit as it does under
// /var/lib/rkt. At the end of the test anything still mounted under Dir is
// reported as a leak and detached before Dir is removed, so that removing it
// never reaches through a leftover bind mount into the host.
func NewStage0With(t testing.TB, stage1ACI string) *Stage0 {
	t.Helper()
	dir, err := os.MkdirTemp("", "rkt-")
	if err != nil {
		t.Fatalf("stage0 data dir: %v", err)
	}
	return newStage0(t, stage1ACI, dir)
}

// NewStage0LongDir returns a Stage0 for the built stage1-kvm.aci whose Dir
// (rkt's --dir) is so deep that every UNIX socket a pod directory holds
// has a path longer than a socket address takes (107 bytes): rkt does not
// limit --dir.
func NewStage0LongDir(t testing.TB) *Stage0 {
	t.Helper()
	top, err := os.MkdirTemp("", "rkt-")
	if err != nil {
		t.Fatalf("stage0 data dir: %v", err)
	}
	s := newStage0(t, ACI(t), top)
	s.Dir = filepath.Join(top, strings.Repeat("a-long-rkt-data-directory/", 4))
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		t.Fatalf("stage0 data dir: %v", err)
	}
	return s
}

// newStage0 returns a Stage0 in dir, which its cleanup removes whole.
func newStage0(t testing.TB, stage1ACI, dir string) *Stage0 {
	s := &Stage0{Dir: dir, Stage1ACI: stage1ACI}
	t.Cleanup(func() {
		// Every end-to-end test ends with a leak check of everything its
		// pods could have left on the host: processes (QEMU's command
		// line names the pod directory), sockets and mounts.
		for _, pid := range ProcessesMentioning(dir) {
			MustBeGone(t, "process of a pod under "+dir, pid)
		}
		// The overlays stage0 mounted are its own, as in rkt, which
		// leaves them until gc: not a leak of the stage1.
		s.mu.Lock()
		for _, p := range s.pods {
			p.unmountOverlays()
		}
		s.mu.Unlock()
		for _, sock := range SocketsUnder(dir) {
			t.Errorf("LEAK: socket %s left at the end of the test", sock)
		}
		if leaked := detachMountsUnder(dir); len(leaked) > 0 {
			t.Errorf("LEAK: still mounted under %s at the end of the test (detached now): %s", dir, strings.Join(leaked, ", "))
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing stage0 data dir: %v", err)
		}
	})
	return s
}

// PodOpts are the `rkt run` / `rkt prepare` flags that shape the pod
// manifest.
type PodOpts struct {
	// MemoryLimit and CPULimit are --memory and --cpu, given after every
	// image: rkt appends a resource isolator to each app (so an image's own
	// isolator of that kind stays, and the appended one comes last).
	MemoryLimit string
	CPULimit    string
	// Volumes (--volume), Mounts (--mount before the first image, so for
	// every app) and Ports (--port).
	Volumes []types.Volume
	Mounts  []schema.Mount
	Ports   []types.ExposedPort
	// InheritEnv (--inherit-env) and SetEnv (--set-env=NAME=VALUE) merge
	// into each app's environment as rkt does.
	InheritEnv bool
	SetEnv     []string
	// Annotations are extra pod annotations (rkt's internal ones); like rkt
	// they never replace coreos.com/rkt/stage1/mutable.
	Annotations     types.Annotations
	UserAnnotations types.UserAnnotations
	UserLabels      types.UserLabels
	// ReadOnlyRootFS is rkt's --readonly-rootfs (every app).
	ReadOnlyRootFS bool
	// Stdin, Stdout and Stderr are rkt's --stdin, --stdout and --stderr
	// (every app): rkt records them as the app's annotations.
	Stdin, Stdout, Stderr string
	// NoOverlay is rkt's --no-overlay: the stage1 and the apps are copied
	// into the pod instead of being mounted as overlays of the tree store
	// (rkt's default, the harness's too).
	NoOverlay bool
}

// Pod is a pod directory created by Prepare.
type Pod struct {
	S    *Stage0
	UUID string
	// Dir is the pod directory. It moves with the pod's state, as in rkt:
	// <Dir>/pods/prepared/<uuid> after Prepare, pods/run/<uuid> from Run or
	// Start on (what the stage1 sees), pods/exited-garbage/<uuid> from GC on.
	Dir string
	// Apps are the app names, in pod manifest order.
	Apps []string

	state string // the pods/ subdirectory Dir is in; "" once deleted
	// overlay: the pod's stage1 and apps are mounted at run time (rkt's
	// default mode); mounted lists those overlays, relative to Dir.
	overlay bool
	mounted []string
}

// Prepare does what `rkt prepare` (and the first half of `rkt run`) does
// with one app per ACI: it renders the stage1 and each app into the tree
// store, and writes stage1/manifest, appsinfo/<app>/manifest (and, in
// overlay mode, appsinfo/<app>/treeStoreID), the pod manifest, pod.lck,
// pod-created and stage1TreeStoreID. With NoOverlay it also copies the
// stage1 into <pod>/stage1 and each app into stage1/rootfs/opt/stage2/<app>;
// in overlay mode (the default) Start mounts them instead. Apps are named
// like rkt names them without --name: the last component of the image name.
func (s *Stage0) Prepare(t testing.TB, opts PodOpts, acis ...string) *Pod {
	t.Helper()
	if len(acis) == 0 {
		t.Fatal("rkt: must provide at least one image or specify the pod manifest")
	}
	if err := s.initPods(); err != nil {
		t.Fatalf("rkt: %v", err)
	}
	uuid, err := newUUID()
	if err != nil {
		t.Fatal(err)
	}
	// rkt creates the pod as an embryo, locks it, and renames it through
	// prepare/ to prepared/ holding that lock all along.
	embryo := s.podPath("embryo", uuid)
	if err := os.Mkdir(embryo, podDirPerm); err != nil {
		t.Fatalf("rkt: error creating new pod: %v", err)
	}
	lock, err := lockDir(embryo, false)
	if err != nil {
		t.Fatalf("rkt: error creating new pod: %v", err)
	}
	defer unlock(lock)
	p := &Pod{S: s, UUID: uuid, overlay: !opts.NoOverlay}
	s.mu.Lock()
	s.pods = append(s.pods, p)
	s.mu.Unlock()
	if err := p.move("embryo", "prepare"); err != nil {
		t.Fatalf("rkt: %v", err)
	}
	if err := s.prepare(p, opts, acis); err != nil {
		t.Fatalf("rkt: error setting up stage0 for pod %s: %v", uuid, err)
	}
	if err := p.move("prepare", "prepared"); err != nil {
		t.Fatalf("rkt: %v", err)
	}
	return p
}

func (s *Stage0) initPods() error {
	for _, d := range []string{"embryo", "prepare", "prepared", "run", "exited-garbage", "garbage"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, "pods", d), podDirPerm); err != nil {
			return fmt.Errorf("creating pods dir: %w", err)
		}
	}
	return nil
}

func (s *Stage0) podPath(state, uuid string) string {
	return filepath.Join(s.Dir, "pods", state, uuid)
}

// move renames the pod directory from one state to the next.
func (p *Pod) move(from, to string) error {
	src, dst := p.S.podPath(from, p.UUID), p.S.podPath(to, p.UUID)
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("moving pod %s from %s to %s: %w", p.UUID, from, to, err)
	}
	p.Dir, p.state = dst, to
	return nil
}

func (s *Stage0) prepare(p *Pod, opts PodOpts, acis []string) error {
	if err := os.MkdirAll(filepath.Join(p.Dir, "appsinfo"), podDirPerm); err != nil {
		return fmt.Errorf("creating apps info directory: %w", err)
	}

	// Stage1: tree store first, then (--no-overlay) a full copy into the pod.
	tree, err := s.treeOf(s.Stage1ACI)
	if err != nil {
		return fmt.Errorf("preparing stage1: %w", err)
	}
	s1 := filepath.Join(p.Dir, "stage1")
	if err := os.Mkdir(s1, podDirPerm); err != nil {
		return fmt.Errorf("creating stage1 directory: %w", err)
	}
	if !p.overlay {
		rendered, err := renderACI(s.Stage1ACI, s1)
		if err != nil {
			return fmt.Errorf("rendering stage1: %w", err)
		}
		if rendered.ID != tree.info.ID {
			return fmt.Errorf("stage1 image %s changed since this Stage0 first used it", s.Stage1ACI)
		}
	}
	if err := writeFile(filepath.Join(s1, "manifest"), tree.info.ManifestJSON, podFilePerm); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(p.Dir, "stage1TreeStoreID"), []byte(tree.id), podFilePerm); err != nil {
		return err
	}

	pm := schema.PodManifest{
		ACKind: schema.PodManifestKind,
		Apps:   make(schema.AppList, 0, len(acis)),
	}
	v, err := types.NewSemVer(RktVersion)
	if err != nil {
		return err
	}
	pm.ACVersion = *v
	for _, aci := range acis {
		ra, err := p.prepareApp(aci, opts, pm.Apps)
		if err != nil {
			return fmt.Errorf("image %s: %w", aci, err)
		}
		pm.Apps = append(pm.Apps, *ra)
		p.Apps = append(p.Apps, ra.Name.String())
	}
	// rkt copies its flag values as they are: no volumes, no ports and no
	// pod isolators are all JSON null.
	if len(opts.Volumes) > 0 {
		pm.Volumes = opts.Volumes
	}
	if len(opts.Ports) > 0 {
		pm.Ports = opts.Ports
	}
	pm.Annotations = append(pm.Annotations, types.Annotation{
		Name:  *types.MustACIdentifier(annPodMutable),
		Value: "false",
	})
	pm.UserAnnotations = opts.UserAnnotations
	pm.UserLabels = opts.UserLabels
	for _, a := range opts.Annotations {
		if _, ok := pm.Annotations.Get(a.Name.String()); !ok {
			pm.Annotations.Set(a.Name, a.Value)
		}
	}
	pmb, err := json.Marshal(pm)
	if err != nil {
		return fmt.Errorf("marshalling pod manifest: %w", err)
	}

	// pod.lck serialises app add/rm in mutable pods; rkt creates it always.
	if err := writeFile(filepath.Join(p.Dir, "pod.lck"), nil, 0o600); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(p.Dir, "pod"), pmb, podFilePerm); err != nil {
		return err
	}
	return writeFile(filepath.Join(p.Dir, "pod-created"), nil, podFilePerm)
}

// linuxArches is what rkt's stage0 accepts as an image's arch label.
var linuxArches = map[string][]string{"linux": types.ValidOSArch["linux"]}

// prepareApp renders one app image into the pod and returns its entry for
// the pod manifest, built from the image's app the way rkt does it.
func (p *Pod) prepareApp(aci string, opts PodOpts, apps schema.AppList) (*schema.RuntimeApp, error) {
	info, err := inspectACI(aci)
	if err != nil {
		return nil, err
	}
	am := info.Manifest
	name, err := appNameOf(am.Name)
	if err != nil {
		return nil, fmt.Errorf("converting image name to app name: %w", err)
	}
	if _, ok := am.Labels.Get("os"); !ok {
		return nil, errors.New("missing os label in the image manifest")
	}
	if _, ok := am.Labels.Get("arch"); !ok {
		return nil, errors.New("missing arch label in the image manifest")
	}
	if err := types.IsValidOSArch(am.Labels.ToMap(), linuxArches); err != nil {
		return nil, err
	}
	if apps.Get(*name) != nil {
		return nil, fmt.Errorf("multiple apps with name %s", name)
	}
	if am.App == nil {
		return nil, errors.New("image has no app section and --exec argument is not provided")
	}

	infoDir := filepath.Join(p.Dir, "appsinfo", name.String())
	if err := os.MkdirAll(infoDir, podDirPerm); err != nil {
		return nil, fmt.Errorf("creating apps info directory: %w", err)
	}
	if p.overlay {
		tr, err := p.S.treeOf(aci)
		if err != nil {
			return nil, fmt.Errorf("rendering ACI into the tree store: %w", err)
		}
		if tr.info.ID != info.ID {
			return nil, errors.New("image changed while being prepared")
		}
		if err := writeFile(filepath.Join(infoDir, "treeStoreID"), []byte(tr.id), podFilePerm); err != nil {
			return nil, err
		}
	} else {
		ad := filepath.Join(p.Dir, "stage1", "rootfs", "opt", "stage2", name.String())
		if err := os.MkdirAll(ad, podDirPerm); err != nil {
			return nil, fmt.Errorf("creating image directory: %w", err)
		}
		if err := os.Chown(ad, os.Getuid(), os.Getgid()); err != nil {
			return nil, err
		}
		rendered, err := renderACI(aci, ad)
		if err != nil {
			return nil, fmt.Errorf("rendering ACI: %w", err)
		}
		if rendered.ID != info.ID {
			return nil, errors.New("image changed while being prepared")
		}
	}
	if err := writeFile(filepath.Join(infoDir, "manifest"), info.ManifestJSON, podFilePerm); err != nil {
		return nil, err
	}

	app := *am.App
	imgName := am.Name
	ra := &schema.RuntimeApp{
		Name:           *name,
		Image:          schema.RuntimeImage{Name: &imgName, ID: info.ID, Labels: am.Labels},
		App:            &app,
		Mounts:         dedupMounts(opts.Mounts),
		ReadOnlyRootFS: opts.ReadOnlyRootFS,
	}
	for _, m := range []struct{ name, mode string }{
		{"coreos.com/rkt/stage2/stdin", opts.Stdin},
		{"coreos.com/rkt/stage2/stdout", opts.Stdout},
		{"coreos.com/rkt/stage2/stderr", opts.Stderr},
	} {
		if m.mode != "" {
			ra.Annotations.Set(*types.MustACIdentifier(m.name), m.mode)
		}
	}
	if opts.MemoryLimit != "" {
		iso, err := types.NewResourceMemoryIsolator(opts.MemoryLimit, opts.MemoryLimit)
		if err != nil {
			return nil, fmt.Errorf("--memory: %w", err)
		}
		if iso.Limit().Value() < 4096 {
			return nil, fmt.Errorf("memory limit of %d bytes too low", iso.Limit().Value())
		}
		app.Isolators = append(app.Isolators[:len(app.Isolators):len(app.Isolators)], iso.AsIsolator())
	}
	if opts.CPULimit != "" {
		iso, err := types.NewResourceCPUIsolator(opts.CPULimit, opts.CPULimit)
		if err != nil {
			return nil, fmt.Errorf("--cpu: %w", err)
		}
		app.Isolators = append(app.Isolators[:len(app.Isolators):len(app.Isolators)], iso.AsIsolator())
	}
	if opts.InheritEnv {
		mergeEnv(&app.Environment, os.Environ(), false)
	}
	mergeEnv(&app.Environment, opts.SetEnv, true)
	return ra, nil
}

// appNameOf is rkt's default app name: the last path component of the image
// name, made a valid AC name.
func appNameOf(image types.ACIdentifier) (*types.ACName, error) {
	parts := strings.Split(image.String(), "/")
	s, err := types.SanitizeACName(parts[len(parts)-1])
	if err != nil {
		return nil, err
	}
	return types.NewACName(s)
}

// mergeEnv sets NAME=VALUE pairs into env, replacing existing names only if
// override is set.
func mergeEnv(env *types.Environment, pairs []string, override bool) {
	for _, kv := range pairs {
		k, v, _ := strings.Cut(kv, "=")
		if _, exists := env.Get(k); override || !exists {
			env.Set(k, v)
		}
	}
}

// dedupMounts keeps the first mount of each path, as rkt merges mounts.
func dedupMounts(ms []schema.Mount) []schema.Mount {
	var out []schema.Mount
	seen := map[string]bool{}
	for _, m := range ms {
		if !seen[m.Path] {
			seen[m.Path] = true
			out = append(out, m)
		}
	}
	return out
}

// treeOf renders an image into <Dir>/cas/tree/<id> the first time a pod of
// this Stage0 needs it, as rkt's tree store does.
func (s *Stage0) treeOf(aci string) (*imageTree, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tr := s.trees[aci]; tr != nil {
		return tr, nil
	}
	if aci == "" {
		return nil, errors.New("no image (Stage0.Stage1ACI is empty)")
	}
	base := filepath.Join(s.Dir, "cas", "tree")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(base, ".render-")
	if err != nil {
		return nil, err
	}
	info, err := renderACI(aci, tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	// The tree store's directories are readable by all, like rkt's: the
	// lower layer of an overlay is looked up as the app's users.
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	tr := &imageTree{info: info, id: "deps-" + info.ID.String()}
	final := filepath.Join(base, tr.id)
	if _, err := os.Stat(final); err == nil {
		os.RemoveAll(tmp)
	} else if err := os.Rename(tmp, final); err != nil {
		return nil, err
	}
	if s.trees == nil {
		s.trees = map[string]*imageTree{}
	}
	s.trees[aci] = tr
	return tr, nil
}

// Manifest parses the pod manifest, as the stage1 will.
func (p *Pod) Manifest(t testing.TB) *schema.PodManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Dir, "pod"))
	if err != nil {
		t.Fatalf("pod manifest: %v", err)
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(b, &pm); err != nil {
		t.Fatalf("pod manifest of %s: %v", p.UUID, err)
	}
	return &pm
}

// stage1Manifest reads the pod's stage1 image manifest, where rkt looks up
// entry points and the interface version on every command.
func (p *Pod) stage1Manifest() (*schema.ImageManifest, error) {
	b, err := os.ReadFile(filepath.Join(p.Dir, "stage1", "manifest"))
	if err != nil {
		return nil, fmt.Errorf("reading stage1 manifest: %w", err)
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("unmarshaling stage1 manifest: %w", err)
	}
	return &m, nil
}

// entryPoint returns the stage1 rootfs path of a named entry point (run,
// enter, gc, stop, app/add...), relative to the rootfs.
func entryPoint(m *schema.ImageManifest, name string) (string, bool) {
	return m.Annotations.Get(annStage1 + name)
}

// interfaceVersion is the stage1's declared interface version; 1 if none.
func interfaceVersion(m *schema.ImageManifest) (int, error) {
	v, ok := m.Annotations.Get(annInterfaceVersion)
	if !ok {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("parsing stage1 interface version %q: %w", v, err)
	}
	return n, nil
}

// LockHeld reports whether some process holds the pod's exclusive lock, the
// only thing rkt looks at to tell a running pod from an exited one.
func (p *Pod) LockHeld() bool {
	f, err := lockDir(p.Dir, true)
	if err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unlock(f)
	return false
}

// AppStatus reads an app's exit status as `rkt status` does
// (stage1/rootfs/rkt/status/<app>); ok is false while there is none.
func (p *Pod) AppStatus(app string) (code int, ok bool) {
	b, err := os.ReadFile(filepath.Join(p.Dir, "stage1", "rootfs", "rkt", "status", app))
	if err != nil && p.overlay {
		// Unmounted (after gc): rkt reads the stage1's upper layer.
		id, _ := p.stage1TreeID()
		b, err = os.ReadFile(filepath.Join(p.Dir, "overlay", id, "upper", "rkt", "status", app))
	}
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false
	}
	return n, true
}

// lockDir opens a directory read-only and takes an exclusive flock on it,
// as rkt locks pods. With nonBlocking, a held lock gives EWOULDBLOCK. The
// descriptor is close-on-exec: only a child that is handed it explicitly
// keeps the lock.
func lockDir(dir string, nonBlocking bool) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if nonBlocking {
		how |= unix.LOCK_NB
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return f, nil
}

// unlock releases a lock lockDir took. rkt's commands are processes of
// their own; here they share the test process, whose other goroutines may
// be starting programs, and a child forked while the lock is open holds it
// until it executes its program (the descriptor is close-on-exec). Go
// forks holding syscall.ForkLock, and its child has executed by the time
// the fork returns: closed under ForkLock, no copy of the lock is left.
func unlock(f *os.File) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	f.Close()
}

func writeFile(p string, b []byte, mode os.FileMode) error {
	if err := os.WriteFile(p, b, mode); err != nil {
		return err
	}
	// WriteFile is subject to the umask; rkt's modes are what the stage1 sees.
	return os.Chmod(p, mode)
}

// newUUID returns a random (version 4) UUID, as rkt gives each pod.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
