package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"golang.org/x/sys/unix"
)

// mountVolumes mounts every host volume share the host listed in the pod
// share at its place under contract.VolumesDir; the apps' units bind them
// into the apps. Empty volumes need nothing: they are in the pod share.
func mountVolumes() error {
	b, err := os.ReadFile(filepath.Join(contract.PodMount, contract.VolumeListFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read the volume list: %w", err)
	}
	var shares []contract.VolumeShare
	if err := json.Unmarshal(b, &shares); err != nil {
		return fmt.Errorf("parse the volume list: %w", err)
	}
	for _, s := range shares {
		dir := contract.VolumeMount(s.Name)
		if filepath.Dir(dir) != contract.VolumesDir {
			return fmt.Errorf("volume name %q", s.Name)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
		if s.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		if err := mountShare(s.Tag, dir, flags); err != nil {
			return fmt.Errorf("mount volume %s (tag %s): %w", s.Name, s.Tag, err)
		}
	}
	return nil
}
