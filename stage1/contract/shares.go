package contract

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Shared file systems. The guest sees exactly these host directories and
// nothing else of the host: never the stage1's own files (rkt runs the
// pod's gc, stop and the CNI plugins from the stage1 rootfs as root).
//
//	tag        host directory                         guest mount        mode
//	config     <pod>/ConfigDir                        ConfigMount        read-only
//	app-<i>    <stage1 rootfs>/opt/stage2/<app>/rootfs AppRootfs(app)     read-write
//	journal    <stage1 rootfs>/JournalDir             JournalMount       read-write
//	empty      <stage1 rootfs>/EmptyVolumesDir        PodMount/volumes   read-write
//	vol-<i>    a host volume's source                 VolumeMount(name)  as the volume says
//
// The config share is mounted first; ShareListFile in it lists the others.
const (
	ConfigTag       = "config"
	JournalTag      = "journal"
	EmptyVolumesTag = "empty"
	// AppTagPrefix and VolumeTagPrefix start the tags of the apps' root
	// file systems and of the host volumes (app-0, vol-0, ...).
	AppTagPrefix    = "app-"
	VolumeTagPrefix = "vol-"
)

// AppTag is the mount tag of the pod's i-th app's root file system.
func AppTag(i int) string { return AppTagPrefix + strconv.Itoa(i) }

// VolumeTag is the mount tag of the pod's i-th host volume share.
func VolumeTag(i int) string { return VolumeTagPrefix + strconv.Itoa(i) }

// NinePMountOptions are the guest's mount options for a 9p share.
// cache=mmap: plain writes reach the host at once (no write-back cache),
// and shared writable mappings (journald maps its files), which cache=none
// refuses, are written back when the mapping goes away.
const NinePMountOptions = "trans=virtio,version=9p2000.L,msize=262144,cache=mmap"

// GuestShare is one share as the guest mounts it: Tag at Path. The host
// lists them in ShareListFile.
type GuestShare struct {
	Tag      string `json:"tag"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"readOnly"`
}

// Validate checks that s mounts somewhere a share may go: below PodMount
// or VolumesDir, or at JournalMount.
func (s GuestShare) Validate() error {
	if s.Tag == "" || strings.ContainsAny(s.Tag, ",/ \n") {
		return fmt.Errorf("share tag %q", s.Tag)
	}
	clean := path.Clean(s.Path)
	if clean != s.Path || !path.IsAbs(s.Path) {
		return fmt.Errorf("share %s: path %q is not a clean absolute path", s.Tag, s.Path)
	}
	if s.Path != JournalMount && !strings.HasPrefix(s.Path, PodMount+"/") && !strings.HasPrefix(s.Path, VolumesDir+"/") {
		return fmt.Errorf("share %s: path %q is outside %s and %s", s.Tag, s.Path, PodMount, VolumesDir)
	}
	return nil
}

// VolumeMount is where the guest mounts the host volume called name.
func VolumeMount(name string) string { return path.Join(VolumesDir, name) }

// EmptyVolumesMount is where the guest mounts the pod's empty volumes.
const EmptyVolumesMount = PodMount + "/volumes"

// EmptyVolume is where the empty volume called name is in the guest.
func EmptyVolume(name string) string { return path.Join(EmptyVolumesMount, name) }
