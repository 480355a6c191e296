// Package volplan matches the pod's appc volumes to each app's mount points
// with rkt's rules (Resolve): a share per host volume, a directory in the
// pod share per empty volume, and per app the volumes it mounts where. It is
// pure; stage1/host/volumes carries the plan out on the host.
package volplan

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// ErrInvalid wraps every problem with the pod's volumes or mounts.
var ErrInvalid = errors.New("invalid volume")

// Kinds of appc volumes.
const (
	KindHost  = "host"
	KindEmpty = "empty"
)

// Volume is one volume of the pod as the VM gets it.
type Volume struct {
	Name string
	Kind string
	// Host volumes: Source on the host, ReadOnly (the whole share),
	// Recursive (submounts of Source are visible).
	Source    string
	ReadOnly  bool
	Recursive bool
	// Empty volumes: the directory's mode and owner.
	Mode     os.FileMode
	UID, GID int
}

// GuestPath is where the volume's content is in the guest (outside any app).
func (v Volume) GuestPath() string {
	if v.Kind == KindHost {
		return contract.VolumeMount(v.Name)
	}
	return contract.EmptyVolume(v.Name)
}

// Bind is one volume bound into one app: Source is the guest path of the
// volume, Target the mount point inside the app's root (host/volumes
// resolves it inside that root, symlinks included).
type Bind struct {
	Source, Target string
	ReadOnly       bool
}

// Mount is one volume mounted in one app.
type Mount struct {
	App    string
	Volume string
	// Path is the mount point in the app's root as the manifest wrote
	// it; Prepare resolves it inside the rootfs (Target).
	Path     string
	ReadOnly bool
}

// Plan is the pod's volumes and every app's mounts, in manifest order.
type Plan struct {
	Volumes []Volume
	Mounts  []Mount
}

// Volume returns the planned volume called name.
func (p *Plan) Volume(name string) (Volume, bool) {
	for _, v := range p.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return Volume{}, false
}

// App is what Resolve needs to know about one app.
type App struct {
	Name string
	// MountPoints are the app's (image or pod manifest app section).
	MountPoints []types.MountPoint
	// Mounts are the pod manifest's apps[].mounts.
	Mounts []schema.Mount
}

// Resolve applies rkt's rules: each of an app's pod-manifest mounts uses
// its appVolume or the pod volume it names (an unknown name is an error);
// each mount point of the app whose path no mount covers uses the pod
// volume of its name, or else an implicit empty volume "<app>-<name>"
// (mode 0755, root-owned). A mount is read-only when its volume says so
// (readOnly set), else as the app's mount point of that name says.
func Resolve(podVolumes []types.Volume, apps []App) (*Plan, error) {
	r := resolver{p: &Plan{}, byName: map[string]types.Volume{}}
	for _, v := range podVolumes {
		n := v.Name.String()
		if _, dup := r.byName[n]; dup {
			return nil, fmt.Errorf("volume %q is defined twice: %w", n, ErrInvalid)
		}
		r.byName[n] = v
	}
	for _, a := range apps {
		if _, err := types.NewACName(a.Name); err != nil {
			return nil, fmt.Errorf("app name %q: %v: %w", a.Name, err, ErrInvalid)
		}
		covered := map[string]bool{}
		if err := r.mounts(a, covered); err != nil {
			return nil, err
		}
		if err := r.mountPoints(a, covered); err != nil {
			return nil, err
		}
	}
	return r.p, nil
}

// resolver is Resolve's state: the plan so far and the pod's volumes.
type resolver struct {
	p      *Plan
	byName map[string]types.Volume
}

// add puts v in the plan when a mount first uses it; volumes keep the
// order of their first use.
func (r *resolver) add(v types.Volume) error {
	pv, err := planVolume(v)
	if err != nil {
		return err
	}
	if old, ok := r.p.Volume(pv.Name); ok {
		if old != pv {
			return fmt.Errorf("volume %q: two different definitions (an app volume clashes with another): %w", pv.Name, ErrInvalid)
		}
		return nil
	}
	r.p.Volumes = append(r.p.Volumes, pv)
	return nil
}

// mounts plans app a's pod-manifest mounts, noting the paths they cover.
func (r *resolver) mounts(a App, covered map[string]bool) error {
	for _, m := range a.Mounts {
		name := m.Volume.String()
		if m.Path == "" {
			return fmt.Errorf("app %s: mount of volume %q has no path: %w", a.Name, name, ErrInvalid)
		}
		covered[m.Path] = true
		vol := m.AppVolume
		if vol == nil {
			v, ok := r.byName[name]
			if !ok {
				return fmt.Errorf("app %s: mount at %q names volume %q, which the pod does not define: %w", a.Name, m.Path, name, ErrInvalid)
			}
			vol = &v
		}
		if err := r.add(*vol); err != nil {
			return fmt.Errorf("app %s: %w", a.Name, err)
		}
		ro := false
		for _, mp := range a.MountPoints {
			if mp.Name.String() == name {
				ro = mp.ReadOnly
				break
			}
		}
		if vol.ReadOnly != nil {
			ro = *vol.ReadOnly
		}
		r.p.Mounts = append(r.p.Mounts, Mount{App: a.Name, Volume: vol.Name.String(), Path: m.Path, ReadOnly: ro})
	}
	return nil
}

// mountPoints plans app a's mount points that no mount covers: the pod
// volume of the same name, or an implicit empty volume.
func (r *resolver) mountPoints(a App, covered map[string]bool) error {
	for _, mp := range a.MountPoints {
		if mp.Path == "" {
			return fmt.Errorf("app %s: mount point %q has no path: %w", a.Name, mp.Name, ErrInvalid)
		}
		if covered[mp.Path] {
			continue
		}
		covered[mp.Path] = true
		vol, ok := r.byName[mp.Name.String()]
		if !ok {
			n, err := types.NewACName(a.Name + "-" + mp.Name.String())
			if err != nil {
				return fmt.Errorf("app %s: mount point %q: %v: %w", a.Name, mp.Name, err, ErrInvalid)
			}
			mode, zero := "0755", 0
			vol = types.Volume{Name: *n, Kind: KindEmpty, Mode: &mode, UID: &zero, GID: &zero}
		}
		if err := r.add(vol); err != nil {
			return fmt.Errorf("app %s: %w", a.Name, err)
		}
		ro := mp.ReadOnly
		if vol.ReadOnly != nil {
			ro = *vol.ReadOnly
		}
		r.p.Mounts = append(r.p.Mounts, Mount{App: a.Name, Volume: vol.Name.String(), Path: mp.Path, ReadOnly: ro})
	}
	return nil
}

// planVolume checks one appc volume.
func planVolume(v types.Volume) (Volume, error) {
	name := v.Name.String()
	if _, err := types.NewACName(name); err != nil {
		return Volume{}, fmt.Errorf("volume name %q: %v: %w", name, err, ErrInvalid)
	}
	pv := Volume{Name: name, Kind: v.Kind}
	switch v.Kind {
	case KindHost:
		if !path.IsAbs(v.Source) {
			return Volume{}, fmt.Errorf("host volume %q: source %q is not an absolute path: %w", name, v.Source, ErrInvalid)
		}
		if strings.ContainsAny(v.Source, ",\n") {
			return Volume{}, fmt.Errorf("host volume %q: source %q contains a comma or newline, which host volume sources may not: %w", name, v.Source, ErrInvalid)
		}
		pv.Source = path.Clean(v.Source)
		pv.ReadOnly = v.ReadOnly != nil && *v.ReadOnly
		pv.Recursive = v.Recursive == nil || *v.Recursive
	case KindEmpty:
		mode := "0755"
		if v.Mode != nil {
			mode = *v.Mode
		}
		m, err := strconv.ParseUint(mode, 8, 32)
		if err != nil || m > 0o7777 {
			return Volume{}, fmt.Errorf("empty volume %q: mode %q is not an octal mode: %w", name, mode, ErrInvalid)
		}
		pv.Mode = os.FileMode(m&0o777) | unixModeBits(m)
		if v.UID != nil {
			pv.UID = *v.UID
		}
		if v.GID != nil {
			pv.GID = *v.GID
		}
		if pv.UID < 0 || pv.GID < 0 {
			return Volume{}, fmt.Errorf("empty volume %q: negative uid or gid: %w", name, ErrInvalid)
		}
	default:
		return Volume{}, fmt.Errorf("volume %q: kind %q is neither %q nor %q: %w", name, v.Kind, KindHost, KindEmpty, ErrInvalid)
	}
	return pv, nil
}

// unixModeBits maps setuid, setgid and sticky to Go's mode bits.
func unixModeBits(m uint64) os.FileMode {
	var fm os.FileMode
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}
