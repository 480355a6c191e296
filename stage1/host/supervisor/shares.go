package supervisor

import (
	"os"
	"path/filepath"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/volumes"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// share is one host directory the guest sees, at guestPath.
type share struct {
	qemu.Share
	guestPath string
}

// shareInput is what decides the pod's shares.
type shareInput struct {
	podDir, stage1Rootfs string
	apps                 []string
	// emptyVolumes: the pod has empty volumes (in EmptyVolumesDir).
	emptyVolumes bool
	volumes      []volumes.Share
}

// podShares are the only host directories the guest sees (the table in
// contract/shares.go): its configuration, read-only; each app's root file
// system; the journal; the empty volumes; the host volumes. Never the rest
// of the stage1 rootfs, whose files rkt runs on the host as root. Pure.
func podShares(in shareInput) []share {
	shares := []share{{
		Share:     qemu.Share{Tag: contract.ConfigTag, Path: filepath.Join(in.podDir, contract.ConfigDir), ReadOnly: true},
		guestPath: contract.ConfigMount,
	}}
	for i, app := range in.apps {
		shares = append(shares, share{
			Share:     qemu.Share{Tag: contract.AppTag(i), Path: filepath.Join(in.stage1Rootfs, contract.AppRootfsRel(app))},
			guestPath: contract.AppRootfs(app),
		})
	}
	shares = append(shares, share{
		Share:     qemu.Share{Tag: contract.JournalTag, Path: filepath.Join(in.stage1Rootfs, contract.JournalDir)},
		guestPath: contract.JournalMount,
	})
	if in.emptyVolumes {
		shares = append(shares, share{
			Share:     qemu.Share{Tag: contract.EmptyVolumesTag, Path: filepath.Join(in.stage1Rootfs, contract.EmptyVolumesDir)},
			guestPath: contract.EmptyVolumesMount,
		})
	}
	for _, v := range in.volumes {
		shares = append(shares, share{
			Share:     qemu.Share{Tag: v.Tag, Path: v.HostPath, ReadOnly: v.ReadOnly},
			guestPath: contract.VolumeMount(v.Name),
		})
	}
	return shares
}

// guestShares is the guest's list of the shares to mount (the config share,
// which holds the list, aside).
func guestShares(shares []share) []contract.GuestShare {
	var list []contract.GuestShare
	for _, s := range shares {
		if s.Tag == contract.ConfigTag {
			continue
		}
		list = append(list, contract.GuestShare{Tag: s.Tag, Path: s.guestPath, ReadOnly: s.ReadOnly})
	}
	return list
}

// shares are this pod's shares.
func (s *session) shares() []share {
	_, err := os.Stat(filepath.Join(s.pod.Stage1Rootfs, contract.EmptyVolumesDir))
	return podShares(shareInput{
		podDir:       s.o.PodDir,
		stage1Rootfs: s.pod.Stage1Rootfs,
		apps:         s.pod.AppNames(),
		emptyVolumes: err == nil,
		volumes:      s.volumes.Shares,
	})
}
