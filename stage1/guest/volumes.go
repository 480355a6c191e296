package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/volumes"
)

// volumeMountOptions: cache=mmap, like the pod share. Plain writes go
// through to the host at once (no write-back cache), and shared writable
// mappings, which cache=none refuses, are written back when the mapping
// goes away, at the latest when the app exits.
const volumeMountOptions = "trans=virtio,version=9p2000.L,msize=262144,cache=mmap"

// mountVolumes mounts every host volume share the host listed in the pod
// share at its place under volumes.GuestHostDir; the apps' units bind them
// into the apps. Empty volumes need nothing: they are in the pod share.
func mountVolumes() error {
	b, err := os.ReadFile(filepath.Join(PodMount, volumes.ListFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read the volume list: %w", err)
	}
	var shares []volumes.Share
	if err := json.Unmarshal(b, &shares); err != nil {
		return fmt.Errorf("parse the volume list: %w", err)
	}
	for _, s := range shares {
		dir := filepath.Join(volumes.GuestHostDir, s.Name)
		if filepath.Dir(dir) != volumes.GuestHostDir {
			return fmt.Errorf("volume name %q", s.Name)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
		if s.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		if err := mountShare(s.Tag, dir, flags, volumeMountOptions); err != nil {
			return fmt.Errorf("mount volume %s (tag %s): %w", s.Name, s.Tag, err)
		}
	}
	return nil
}
