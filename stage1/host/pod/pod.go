// Package pod reads what rkt's stage0 prepared in the pod directory: the pod
// manifest, and each app's image manifest and rootfs.
package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// ErrNoApps is returned for a pod manifest without apps.
var ErrNoApps = errors.New("pod has no apps")

// App is one app of the pod.
type App struct {
	Name string
	// Image is the app's image manifest.
	Image *schema.ImageManifest
	// App is the effective app: the pod manifest's (where rkt merged the
	// user's overrides), else the image's.
	App types.App
	// ReadOnlyRootFS comes from the pod manifest.
	ReadOnlyRootFS bool
	// RootfsHost is the app's rootfs on the host.
	RootfsHost string
	// Annotations are the pod manifest's annotations of the app (rkt
	// records the app's stream modes there, for one).
	Annotations types.Annotations
}

// Pod is a loaded pod directory.
type Pod struct {
	Dir          string
	Stage1Rootfs string
	Manifest     *schema.PodManifest
	Apps         []App
}

// Load reads the pod in dir.
func Load(dir string) (*Pod, error) {
	b, err := os.ReadFile(filepath.Join(dir, contract.PodManifest))
	if err != nil {
		return nil, fmt.Errorf("read pod manifest: %w", err)
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(b, &pm); err != nil {
		return nil, fmt.Errorf("parse pod manifest: %w", err)
	}
	if len(pm.Apps) == 0 {
		return nil, ErrNoApps
	}
	p := &Pod{Dir: dir, Stage1Rootfs: contract.Stage1Rootfs(dir), Manifest: &pm}
	for _, ra := range pm.Apps {
		name := ra.Name.String()
		b, err := os.ReadFile(filepath.Join(p.Stage1Rootfs, contract.AppManifestRel(name)))
		if err != nil {
			return nil, fmt.Errorf("app %s: read image manifest: %w", name, err)
		}
		var im schema.ImageManifest
		if err := json.Unmarshal(b, &im); err != nil {
			return nil, fmt.Errorf("app %s: parse image manifest: %w", name, err)
		}
		app := ra.App
		if app == nil {
			app = im.App
		}
		if app == nil {
			return nil, fmt.Errorf("app %s: neither the pod nor the image manifest defines an app to run", name)
		}
		rootfs := filepath.Join(p.Stage1Rootfs, contract.AppRootfsRel(name))
		if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("app %s: no rootfs at %s", name, rootfs)
		}
		p.Apps = append(p.Apps, App{Name: name, Image: &im, App: *app, ReadOnlyRootFS: ra.ReadOnlyRootFS, RootfsHost: rootfs, Annotations: ra.Annotations})
	}
	return p, nil
}

// AppNames lists the apps in manifest order.
func (p *Pod) AppNames() []string {
	names := make([]string, len(p.Apps))
	for i, a := range p.Apps {
		names[i] = a.Name
	}
	return names
}
