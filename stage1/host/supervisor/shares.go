package supervisor

import (
	"os"
	"path/filepath"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/cleanup"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/sharetree"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/volumes"
)

// shareInput is what decides the pod share's contents.
type shareInput struct {
	podDir, stage1Rootfs string
	apps                 []string
	// emptyVolumes: the pod has empty volumes (in EmptyVolumesDir).
	emptyVolumes bool
	volumes      []volumes.Share
}

// shareEntries are the only host directories the guest sees (the table in
// contract/shares.go): its configuration, read-only; each app's root file
// system; the journal; the empty volumes; the host volumes. Never the rest
// of the stage1 rootfs, whose files rkt runs on the host as root. Pure.
func shareEntries(in shareInput) []sharetree.Entry {
	entries := []sharetree.Entry{{
		Path: contract.ShareConfig, Source: filepath.Join(in.podDir, contract.ConfigDir), ReadOnly: true,
	}}
	for _, app := range in.apps {
		// Recursive, as a 9p export of the rootfs would show it.
		entries = append(entries, sharetree.Entry{
			Path: contract.AppRootfsRel(app), Source: filepath.Join(in.stage1Rootfs, contract.AppRootfsRel(app)), Recursive: true,
		})
	}
	entries = append(entries, sharetree.Entry{
		Path: contract.ShareJournal, Source: filepath.Join(in.stage1Rootfs, contract.JournalDir),
	})
	if in.emptyVolumes {
		entries = append(entries, sharetree.Entry{
			Path: contract.ShareEmptyVolumes, Source: filepath.Join(in.stage1Rootfs, contract.EmptyVolumesDir),
		})
	}
	for _, v := range in.volumes {
		entries = append(entries, sharetree.Entry{
			Path: filepath.Join(contract.ShareHostVolumes, v.Name), Source: v.HostPath, ReadOnly: v.ReadOnly, Recursive: v.Recursive,
		})
	}
	return entries
}

// buildShare builds the pod share, removed by undo (and by gc if run dies).
func (s *session) buildShare(undo *cleanup.Stack) error {
	_, err := os.Stat(filepath.Join(s.pod.Stage1Rootfs, contract.EmptyVolumesDir))
	entries := shareEntries(shareInput{
		podDir:       s.o.PodDir,
		stage1Rootfs: s.pod.Stage1Rootfs,
		apps:         s.pod.AppNames(),
		emptyVolumes: err == nil,
		volumes:      s.volumes.Shares,
	})
	root := filepath.Join(s.o.PodDir, contract.ShareDir)
	undo.Push("remove the pod share", func() error { return sharetree.Remove(root) })
	return sharetree.Build(root, entries)
}
