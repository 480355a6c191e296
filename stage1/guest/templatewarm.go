package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// A template keeps the code its QEMU translated before the template point,
// and a clone's QEMU starts with it (docs/architecture.md, "Templates").
// What every clone runs and a template's boot does not is run here once,
// so that it is translated already, in PID 1, the kernel and our program:
//   - the kernel's 9p client: mounting the pod share, a lookup and a
//     directory read in it, and unmounting it (a clone mounts the share
//     first thing);
//   - the exit reporter's calls on systemd's private bus (a short pod's end
//     waits for them);
//   - an app's start and end: systemd sets up a sandbox as for any pod's
//     app (namespaces, the protected paths, the capability bounding set,
//     the seccomp filter, which systemd compiles in the child), runs a
//     program in it and stops the unit (contract.WarmApp).

// warmUpTimeout bounds the warm-up: past it the template is made without
// the rest of it (it only costs the clones time).
const warmUpTimeout = 20 * time.Second

// unmountWait bounds the wait for systemd to see the warm-up's root
// unmounted (it takes milliseconds).
const unmountWait = 2 * time.Second

// errWarmAppStuck: the warm-up app did not end in time. Its process would
// be in every clone, so the guest must not become a template.
var errWarmAppStuck = errors.New("the warm-up app did not end")

// warmUp runs the warm-up when this boot makes a template
// (contract.MakingTemplateParam); a cold boot would only pay for it. A
// failure is reported and skipped, but for an app left running.
func warmUp() error {
	if kernelParam(contract.MakingTemplateParam) != "1" {
		return nil
	}
	if err := warmShare(); err != nil {
		fmt.Fprintf(os.Stderr, "stage1-guest: warm-up: %v\n", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), warmUpTimeout)
	defer cancel()
	err := warmSystemd(ctx)
	if errors.Is(err, errWarmAppStuck) {
		return err
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1-guest: warm-up: %v\n", err)
	}
	return nil
}

// warmShare mounts the pod share as a clone does, read-only, reads it
// and unmounts it. The template's QEMU gives it an empty directory of its
// own, and lets the guest be saved once the share is unmounted (QEMU's 9p
// server refuses to migrate while it is mounted). A share served by
// virtiofs is left alone: its shapes have no templates.
func warmShare() error {
	if virtiofsShare(contract.PodTag) {
		return nil
	}
	if err := mountShare(contract.PodTag, contract.PodMount, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_RDONLY); err != nil {
		return fmt.Errorf("mount the pod share: %w", err)
	}
	os.ReadDir(contract.PodMount)
	os.Stat(filepath.Join(contract.PodMount, contract.ShareConfig))
	if err := unix.Unmount(contract.PodMount, 0); err != nil {
		return fmt.Errorf("unmount the pod share: %w", err)
	}
	return nil
}

// warmSystemd connects to systemd as the exit reporter does, watches unit
// changes, asks for a unit's state as for an ended app's, then runs the
// warm-up app and waits for its end as the reporter waits for an app's.
// Nothing is left of either in the guest.
func warmSystemd(ctx context.Context) error {
	conn, err := dialSystemd()
	if err != nil {
		return err
	}
	defer conn.close()
	app := contract.AppService(contract.WarmApp)
	ended := make(chan error, 1)
	conn.unitChanges(func(path dbus.ObjectPath, changed map[string]dbus.Variant) {
		if path != unitPath(app) {
			return
		}
		end, err := conn.unitEnd(ctx, app, changed)
		if err == nil && !end.ended {
			return
		}
		// Only a failed unit is sure to be still loaded: an inactive
		// one may be collected at once, and asked for again, its main
		// process's status is a new unit's.
		if s, _ := changed["ActiveState"].Value().(string); err == nil && s == "failed" {
			err = fmt.Errorf("%s failed: its main process ended with code %d, status %d", app, end.code, end.status)
		}
		select {
		case ended <- err:
		default:
		}
	})
	props := append([]property{activeState}, endState...)
	if _, err := conn.properties(ctx, contract.ConfigureService, props); err != nil {
		return fmt.Errorf("ask systemd: %w", err)
	}
	undo, err := makeWarmRoot()
	if err != nil {
		return err
	}
	defer func() {
		undo()
		// systemd logs the pod mount point's unmount to the kernel's
		// log (no journald yet); once it has, the boot's kernel log is
		// skipped (skipBootKernelLog), that line with it, rather than
		// be in every clone's journal with the template's time.
		if err := conn.awaitInactive(ctx, unit.UnitNamePathEscape(contract.PodMount)+".mount", unmountWait); err != nil {
			fmt.Fprintf(os.Stderr, "stage1-guest: warm-up: %v\n", err)
		}
	}()
	if err := conn.startUnit(ctx, app, "replace"); err != nil {
		return err
	}
	select {
	case err := <-ended:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w within %v", errWarmAppStuck, warmUpTimeout)
	}
}

// makeWarmRoot makes the warm-up app's root where a pod's app root is
// (contract.AppRootfs; a tmpfs on the pod share's mount point, which is
// empty until the pod's configuration comes), with the guest program bound
// in as its executable and the directories of its streams. undo removes
// all of it.
func makeWarmRoot() (undo func(), err error) {
	if err := unix.Mount("tmpfs", contract.PodMount, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m"); err != nil {
		return nil, fmt.Errorf("mount a tmpfs on %s: %w", contract.PodMount, err)
	}
	undo = func() {
		os.RemoveAll(contract.IODir)
		if err := unix.Unmount(contract.PodMount, unix.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "stage1-guest: warm-up: unmount %s: %v\n", contract.PodMount, err)
		}
	}
	root := contract.AppRootfs(contract.WarmApp)
	exe := filepath.Join(root, contract.GuestProgram)
	// An app's root has these; the protected paths are applied in them.
	for _, d := range []string{"proc", "sys", "dev", filepath.Dir(contract.GuestProgram)} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			undo()
			return nil, fmt.Errorf("warm-up root: %w", err)
		}
	}
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		undo()
		return nil, fmt.Errorf("warm-up root: %w", err)
	}
	if err := unix.Mount(contract.GuestProgram, exe, "", unix.MS_BIND, ""); err != nil {
		undo()
		return nil, fmt.Errorf("bind %s into the warm-up root: %w", contract.GuestProgram, err)
	}
	if err := os.MkdirAll(contract.IODir, 0o755); err != nil {
		undo()
		return nil, fmt.Errorf("create %s: %w", contract.IODir, err)
	}
	return undo, nil
}
