package contract

import (
	"path"
)

// The guest sees one shared file system of the host, the pod share: PodTag,
// mounted at PodMount. On the host it is ShareDir, a tree the run entry
// point builds of bind mounts, each the only way into what it shows:
//
//	in the share            host source                              mode
//	config/                 <pod>/ConfigDir                          read-only
//	opt/stage2/<app>/rootfs <stage1 rootfs>/opt/stage2/<app>/rootfs  read-write
//	journal/                <stage1 rootfs>/JournalDir               read-write
//	volumes/                <stage1 rootfs>/EmptyVolumesDir          read-write
//	host/<name>             a host volume's source                   as the volume says
//
// The tree's own directories are read-only. Nothing else of the host is in
// it: never the stage1's own files (rkt runs the pod's gc, stop and the CNI
// plugins from the stage1 rootfs as root). A single share also keeps the
// VM within microvm's eight virtio-mmio devices whatever the number of apps
// and volumes.
const PodTag = "pod"

// Places in the pod share (relative to ShareDir on the host and to PodMount
// in the guest).
const (
	// ShareConfig is the pod's configuration for the guest (ConfigDir).
	ShareConfig = "config"
	// ShareJournal is the pod's journal directory (JournalDir).
	ShareJournal = "journal"
	// ShareEmptyVolumes holds the empty volumes (EmptyVolumesDir).
	ShareEmptyVolumes = "volumes"
	// ShareHostVolumes holds one directory per host volume, by name.
	ShareHostVolumes = "host"
)

// NinePMountOptions are the guest's mount options for a 9p share.
// cache=mmap: plain writes reach the host at once (no write-back cache),
// and shared writable mappings (journald maps its files), which cache=none
// refuses, are written back when the mapping goes away.
const NinePMountOptions = "trans=virtio,version=9p2000.L,msize=262144,cache=mmap"

// VolumeMount is where the guest finds the host volume called name.
func VolumeMount(name string) string { return path.Join(PodMount, ShareHostVolumes, name) }

// EmptyVolume is where the guest finds the empty volume called name.
func EmptyVolume(name string) string { return path.Join(PodMount, ShareEmptyVolumes, name) }
