package hypervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// ErrNotEmulated means the VM runs under KVM: it has no translated code.
var ErrNotEmulated = errors.New("the VM is not emulated (TCG)")

// smapsLimit bounds how much of QEMU's /proc/<pid>/smaps is read. The
// kernel writes that file, but QEMU, which the guest may have taken
// over, chooses how many mappings it lists (about 200 here: ~60 KiB).
const smapsLimit = 8 << 20

// TranslatedCode is the host memory TCG's translated code holds now, in
// bytes: the resident size of QEMU's code buffer, its largest anonymous
// executable mapping, as the kernel counts it (not as QEMU reports it).
func (v *VM) TranslatedCode() (int64, error) {
	if v.accel != qemu.TCG {
		return 0, ErrNotEmulated
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", v.Pid()))
	if err != nil {
		return 0, fmt.Errorf("translated code: %w", err)
	}
	defer f.Close()
	n, err := codeBufferRSS(f, smapsLimit)
	if err != nil {
		return 0, fmt.Errorf("translated code: %w", err)
	}
	return n, nil
}

// codeBufferRSS reads an smaps listing (at most limit bytes of it) and
// returns the Rss, in bytes, of the largest anonymous executable mapping.
func codeBufferRSS(r io.Reader, limit int64) (int64, error) {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	sc := bufio.NewScanner(lr)
	var best, bestRSS int64 = -1, 0
	candidate := false // the mapping whose fields follow is anonymous and executable
	var size int64
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			// A mapping's first line: range, perms, offset, dev, inode[, path].
			candidate = len(f) == 5 && len(f[1]) == 4 && f[1][2] == 'x' && f[4] == "0"
			continue
		}
		if !candidate || len(f) != 3 || f[2] != "kB" {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || v < 0 || v > 1<<40 {
			return 0, fmt.Errorf("smaps: bad %s %q", f[0], f[1])
		}
		switch f[0] {
		case "Size:":
			size = v
		case "Rss:":
			if size > best {
				best, bestRSS = size, v<<10
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("smaps: %w", err)
	}
	if lr.N <= 0 {
		return 0, fmt.Errorf("smaps: longer than %d bytes", limit)
	}
	if best < 0 {
		return 0, errors.New("smaps: no anonymous executable mapping (no code buffer)")
	}
	return bestRSS, nil
}
