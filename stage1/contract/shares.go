package contract

import (
	"path"
	"strconv"
)

// Shared file systems: the host exports directories to the guest under
// these mount tags.
const (
	// PodTag is the pod share: <pod>/stage1/rootfs, at PodMount.
	PodTag = "pod"
	// VolumeTagPrefix starts the tag of every host volume share
	// (vol-0, vol-1, ...).
	VolumeTagPrefix = "vol-"
)

// VolumeTag is the mount tag of the pod's i-th host volume share.
func VolumeTag(i int) string { return VolumeTagPrefix + strconv.Itoa(i) }

// NinePMountOptions are the guest's mount options for a 9p share.
// cache=mmap: plain writes reach the host at once (no write-back cache),
// and shared writable mappings (journald maps its files), which cache=none
// refuses, are written back when the mapping goes away.
const NinePMountOptions = "trans=virtio,version=9p2000.L,msize=262144,cache=mmap"

// VolumeShare is one host volume share as the guest mounts it: Tag at
// VolumesDir/Name. The host lists them in VolumeListFile.
type VolumeShare struct {
	Tag      string `json:"tag"`
	Name     string `json:"name"`
	ReadOnly bool   `json:"readOnly"`
}

// VolumeMount is where the guest mounts the host volume called name.
func VolumeMount(name string) string { return path.Join(VolumesDir, name) }

// EmptyVolume is where the empty volume called name is in the guest: a
// directory of the pod share.
func EmptyVolume(name string) string { return path.Join(PodMount, EmptyVolumesDir, name) }
