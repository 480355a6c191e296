package guestimage

import (
	"bufio"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// Stage installs a guest program under contract.GuestProgramDir by its base
// name: the stage1-guest binary lands exactly at contract.GuestProgram.
func TestGuestProgramPath(t *testing.T) {
	if got := path.Join("/", contract.GuestProgramDir, path.Base(contract.GuestProgram)); got != contract.GuestProgram {
		t.Errorf("a program staged as %s/%s is %s in the guest, not contract.GuestProgram %s",
			contract.GuestProgramDir, path.Base(contract.GuestProgram), got, contract.GuestProgram)
	}
}

// The image's own units that run our guest program name it exactly as
// contract.GuestProgram, the path Stage installs it at.
func TestStaticUnitsRunGuestProgram(t *testing.T) {
	users := map[string]bool{}
	err := fs.WalkDir(static, "guestfs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isUnitFile(p) {
			return err
		}
		f, err := static.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			key, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			if !ok || !strings.HasPrefix(key, "Exec") {
				continue
			}
			// Special executable prefixes (systemd.service(5)): -, @, :, +, !.
			fields := strings.Fields(strings.TrimLeft(value, "-@:+!"))
			if len(fields) == 0 {
				continue
			}
			cmd := fields[0]
			ours := path.Base(cmd) == path.Base(contract.GuestProgram) ||
				strings.HasPrefix(strings.TrimPrefix(cmd, "/"), contract.GuestProgramDir+"/")
			if !ours {
				continue
			}
			users[path.Base(p)] = true
			if cmd != contract.GuestProgram {
				t.Errorf("%s:%d: %s runs %s, want contract.GuestProgram %s", p, n, key, cmd, contract.GuestProgram)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	// The check above found the units it is about.
	for _, unit := range []string{contract.ConfigureService, "stage1-selftest.service"} {
		if !users[unit] {
			t.Errorf("%s: no Exec line runs our guest program (found in %v)", unit, users)
		}
	}
}

func isUnitFile(p string) bool {
	switch path.Ext(p) {
	case ".service", ".socket", ".target", ".mount", ".timer", ".path":
		return true
	}
	return false
}

// The targets that end the VM give the power-off contract.PowerOffTimeout
// before forcing the end: less cuts the journal and the apps' last output.
func TestPowerOffTimeout(t *testing.T) {
	for _, target := range []string{"poweroff.target", "reboot.target"} {
		b, err := fs.ReadFile(static, "guestfs/usr/lib/systemd/system/"+target)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "JobTimeoutSec="); ok {
				got = append(got, v)
			}
		}
		if want := fmt.Sprintf("%ds", int(contract.PowerOffTimeout/time.Second)); len(got) != 1 || got[0] != want {
			t.Errorf("%s: JobTimeoutSec=%q, want %s (contract.PowerOffTimeout)", target, got, want)
		}
	}
}
