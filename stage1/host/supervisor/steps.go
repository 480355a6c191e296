package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"github.com/appc/spec/schema/types"
	"golang.org/x/term"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/fsutil"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/cleanup"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/hostres"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/pod"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/volumes"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/sizing"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/units"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/volplan"
)

// keepLock keeps rkt's pod lock for the pod's whole life: the fd is inherited
// locked; it only must not leak into QEMU.
func (s *session) keepLock(*cleanup.Stack) error {
	if s.o.Settings.LockFD < 0 {
		s.logf("no %s: not started by rkt", settings.LockFDEnv)
		return nil
	}
	syscall.CloseOnExec(s.o.Settings.LockFD)
	return nil
}

// makeVMDir makes the pod's directory for the VM's host-side files, root's
// only.
func (s *session) makeVMDir(*cleanup.Stack) error {
	dir := filepath.Join(s.o.PodDir, contract.VMDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// loadPod reads the pod's manifests and sizes its VM.
func (s *session) loadPod(*cleanup.Stack) error {
	p, err := pod.Load(s.o.PodDir)
	if err != nil {
		return err
	}
	s.pod = p
	if s.o.Flags.Interactive && len(p.Apps) != 1 {
		return fmt.Errorf("--interactive needs a pod with exactly one app, this one has %d", len(p.Apps))
	}
	if f, ok := s.o.Stdin.(*os.File); ok && s.o.Flags.Interactive && term.IsTerminal(int(f.Fd())) {
		s.term.tty = true
		s.term.cols, s.term.rows, _ = term.GetSize(int(f.Fd()))
	}
	apps := make([]types.App, len(p.Apps))
	for i, a := range p.Apps {
		apps[i] = a.App
	}
	s.size, err = sizing.VMSize(apps, runtime.NumCPU())
	return err
}

// prepareVolumes matches the pod's volumes to the apps' mount points,
// checks host sources, creates empty volumes and mount targets.
func (s *session) prepareVolumes(*cleanup.Stack) error {
	var apps []volplan.App
	rootfs := map[string]string{}
	for i, a := range s.pod.Apps {
		apps = append(apps, volplan.App{Name: a.Name, MountPoints: a.App.MountPoints, Mounts: s.pod.Manifest.Apps[i].Mounts})
		rootfs[a.Name] = a.RootfsHost
	}
	plan, err := volplan.Resolve(s.pod.Manifest.Volumes, apps)
	if err != nil {
		return err
	}
	s.volumes, err = volumes.Prepare(plan, s.pod.Stage1Rootfs, rootfs)
	return err
}

// unitsInput is what units.Generate needs, from the run's flags and the
// loaded pod.
func (s *session) unitsInput() units.Pod {
	f := s.o.Flags
	in := units.Pod{
		Interactive: f.Interactive, TTY: s.term.tty, Rows: s.term.rows, Cols: s.term.cols,
		DisableCapabilities: f.DisableCaps, DisableSeccomp: f.DisableSeccomp, DisablePaths: f.DisablePaths,
	}
	for _, a := range s.pod.Apps {
		in.Apps = append(in.Apps, units.App{
			Name:           a.Name,
			ImageName:      a.Image.Name.String(),
			App:            a.App,
			RootfsHost:     a.RootfsHost,
			ReadOnlyRootFS: a.ReadOnlyRootFS,
			MetadataURL:    s.net.mdsURL,
			Binds:          s.volumes.Binds[a.Name],
			Streams:        units.StreamModesFrom(a.Annotations),
		})
	}
	return in
}

// writeGuestFiles makes the pod's configuration for the guest: the units
// and the apps' accounts (sent in contract.PodConfig, see podConfig), the
// apps' environments (files of the pod share, for enter). It also makes
// the journal's directory.
func (s *session) writeGuestFiles(*cleanup.Stack) error {
	in := s.unitsInput()
	files, err := units.Generate(in)
	if err != nil {
		return err
	}
	s.guestUnits = nil
	for _, f := range files {
		s.guestUnits = append(s.guestUnits, contract.PodFile{Name: f.Name, Data: string(f.Content)})
	}
	s.guestIO = units.IOConfig(in)
	config := filepath.Join(s.o.PodDir, contract.ConfigDir)
	for _, a := range in.Apps {
		env, err := contract.EncodeEnv(units.AppEnvironment(a))
		if err != nil {
			return fmt.Errorf("app %s: environment: %w", a.Name, err)
		}
		if err := writeFile(filepath.Join(config, contract.EnvDir), a.Name, env, 0o600); err != nil {
			return err
		}
	}
	passwd, group, err := units.Accounts(in)
	if err != nil {
		return err
	}
	s.guestAccounts = []contract.PodFile{{Name: "passwd", Data: string(passwd)}, {Name: "group", Data: string(group)}}
	// The journal persists in the pod, where rkt's tools look for it.
	return os.MkdirAll(filepath.Join(s.pod.Stage1Rootfs, contract.JournalDir), 0o755)
}

// writeFile writes dir/name, creating dir.
func writeFile(dir, name string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), data, mode)
}

// writePid writes <pod>/pid: rkt shows its mtime as the pod's start time and
// passes the number to enter.
func (s *session) writePid(*cleanup.Stack) error {
	return hostres.WritePidFile(filepath.Join(s.o.PodDir, contract.PidFile), os.Getpid(), 0o644)
}

// writeStatus records app's exit status where `rkt status` reads it, from
// the guest's exited event (already checked: a known app, 0 to 255).
func (s *session) writeStatus(app string, status int) error {
	p := filepath.Join(s.pod.Stage1Rootfs, contract.StatusDir, app)
	return fsutil.WriteFileAtomic(p, []byte(strconv.Itoa(status)), 0o644)
}

// markReady makes `rkt status --wait-ready` return.
func (s *session) markReady() error {
	link := filepath.Join(s.pod.Stage1Rootfs, contract.SupervisorStatus)
	os.Remove(link)
	return os.Symlink("ready", link)
}
