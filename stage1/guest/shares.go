package guest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// mountShares mounts every share the host listed in the config share
// (the apps' root file systems, the journal, the volumes) at its place.
// journal reports whether the journal share was among them.
func mountShares() (journal bool, err error) {
	b, err := os.ReadFile(filepath.Join(contract.ConfigMount, contract.ShareListFile))
	if err != nil {
		return false, fmt.Errorf("read the share list: %w", err)
	}
	var shares []contract.GuestShare
	if err := json.Unmarshal(b, &shares); err != nil {
		return false, fmt.Errorf("parse the share list: %w", err)
	}
	for _, s := range shares {
		if err := s.Validate(); err != nil {
			return false, err
		}
		if err := os.MkdirAll(s.Path, 0o755); err != nil {
			return false, err
		}
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
		if s.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		if err := mountShare(s.Tag, s.Path, flags); err != nil {
			return false, fmt.Errorf("mount share %s on %s: %w", s.Tag, s.Path, err)
		}
		journal = journal || s.Path == contract.JournalMount
	}
	return journal, nil
}
