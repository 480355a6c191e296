package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Overlay mode, rkt's default: when a pod starts, its stage1 and each of
// its apps are mounted as overlayfs, the read-only tree store rendering as
// the lower layer and a pod-private upper and work directory under
// <pod>/overlay/<tree store ID>/ (an app's are upper/<app> and work/<app>),
// as rkt's stage0 does; they stay mounted until gc.

// mountOverlays mounts the stage1 at stage1/rootfs, then each app at
// stage1/rootfs/opt/stage2/<app>/rootfs with its image manifest copied
// next to it, as `rkt run` does before it execs the stage1.
func (p *Pod) mountOverlays() error {
	if err := p.mountStage1Overlay(); err != nil {
		return err
	}
	for _, app := range p.Apps {
		info := filepath.Join(p.Dir, "appsinfo", app)
		id, err := os.ReadFile(filepath.Join(info, "treeStoreID"))
		if err != nil {
			return fmt.Errorf("app %s: %w", app, err)
		}
		ad := filepath.Join("stage1/rootfs/opt/stage2", app)
		if err := os.MkdirAll(filepath.Join(p.Dir, ad), podDirPerm); err != nil {
			return fmt.Errorf("app %s: %w", app, err)
		}
		m, err := os.ReadFile(filepath.Join(info, "manifest"))
		if err != nil {
			return fmt.Errorf("app %s: %w", app, err)
		}
		if err := writeFile(filepath.Join(p.Dir, ad, "manifest"), m, podFilePerm); err != nil {
			return fmt.Errorf("app %s: %w", app, err)
		}
		dir := filepath.Join(p.Dir, "overlay", string(id))
		upper, work := filepath.Join(dir, "upper", app), filepath.Join(dir, "work", app)
		if err := p.mountOverlay(string(id), upper, work, filepath.Join(ad, "rootfs")); err != nil {
			return fmt.Errorf("app %s: %w", app, err)
		}
	}
	return nil
}

// mountStage1Overlay mounts the stage1 at stage1/rootfs, unless it is
// mounted already: rkt's gc does so before it runs the gc entry point of a
// pod whose overlays are gone (a gc that failed before, a reboot).
func (p *Pod) mountStage1Overlay() error {
	p.S.mu.Lock()
	mounted := slices.Contains(p.mounted, "stage1/rootfs")
	p.S.mu.Unlock()
	if mounted {
		return nil
	}
	id, err := p.stage1TreeID()
	if err != nil {
		return err
	}
	s1 := filepath.Join(p.Dir, "overlay", id)
	if err := p.mountOverlay(id, filepath.Join(s1, "upper"), filepath.Join(s1, "work"), "stage1/rootfs"); err != nil {
		return fmt.Errorf("stage1: %w", err)
	}
	return nil
}

// mountOverlay mounts the tree id's rootfs with upper and work on target
// (relative to the pod directory).
func (p *Pod) mountOverlay(id, upper, work, target string) error {
	lower := p.S.treeRootfs(id)
	st, err := os.Stat(lower)
	if err != nil {
		return err
	}
	abs := filepath.Join(p.Dir, target)
	for _, d := range []string{upper, abs} {
		if err := os.MkdirAll(d, st.Mode().Perm()); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", abs, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting overlay on %s: %w", abs, err)
	}
	p.S.mu.Lock()
	p.mounted = append(p.mounted, target)
	p.S.mu.Unlock()
	return nil
}

// unmountOverlays detaches the pod's overlays, the apps' first, as rkt's gc
// does. The caller holds p.S.mu or is the test goroutine with no pod
// running.
func (p *Pod) unmountOverlays() {
	if p.state == "" {
		return
	}
	for i := len(p.mounted) - 1; i >= 0; i-- {
		unix.Unmount(filepath.Join(p.Dir, p.mounted[i]), unix.MNT_DETACH)
	}
	p.mounted = nil
}

// StrayMounts lists what is mounted under the pod directory besides the
// overlays stage0 mounted itself: what a stage1 left behind.
func (p *Pod) StrayMounts() []string {
	var out []string
	for _, mp := range mountsUnder(p.Dir) {
		rel := strings.TrimPrefix(mp, p.Dir+"/")
		if !slices.Contains(p.mounted, rel) {
			out = append(out, mp)
		}
	}
	return out
}

// Stage1Image is the stage1 image's rendering in the tree store: what the
// pod's stage1/rootfs starts as, in either mode.
func (p *Pod) Stage1Image() (string, error) {
	id, err := p.stage1TreeID()
	if err != nil {
		return "", err
	}
	return p.S.treeRootfs(id), nil
}

// stage1TreeID is the pod's stage1TreeStoreID.
func (p *Pod) stage1TreeID() (string, error) {
	b, err := os.ReadFile(filepath.Join(p.Dir, "stage1TreeStoreID"))
	return string(b), err
}

// treeRootfs is the root filesystem of tree id in the tree store.
func (s *Stage0) treeRootfs(id string) string {
	return filepath.Join(s.Dir, "cas", "tree", id, "rootfs")
}
