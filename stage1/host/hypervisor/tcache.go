package hypervisor

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// ErrNotEmulated means the VM runs under KVM: it has no translated code.
var ErrNotEmulated = errors.New("the VM is not emulated (TCG)")

// smapsLimit bounds how much of QEMU's /proc/<pid>/smaps is read. The
// kernel writes that file, but QEMU, which the guest may have taken
// over, chooses how many mappings it lists (an idle pod's: ~160, 115 KiB).
const smapsLimit = 8 << 20

// CodeSampler measures, again and again, the host memory TCG's
// translated code holds: the resident size of QEMU's code buffer, its
// largest anonymous executable mapping, as the kernel counts it (not as
// QEMU reports it). Run samples it for the pod's whole life, so a sample
// allocates nothing: the garbage of a plain read every 30 s grew an idle
// run's heap until its first collection (PSS 2.2 -> 4.8 MiB per pod).
type CodeSampler struct {
	fd  int    // QEMU's smaps, open for the pod's life
	buf []byte // reused; grows up to smapsLimit
}

// CodeSampler opens QEMU's smaps for sampling (ErrNotEmulated under KVM).
func (v *VM) CodeSampler() (*CodeSampler, error) {
	if v.accel != qemu.TCG {
		return nil, ErrNotEmulated
	}
	return openCodeSampler(fmt.Sprintf("/proc/%d/smaps", v.Pid()))
}

func openCodeSampler(path string) (*CodeSampler, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("translated code: open %s: %w", path, err)
	}
	return &CodeSampler{fd: fd, buf: make([]byte, 128<<10)}, nil
}

// Sample returns the translated code's resident size in bytes. It reads
// the listing anew from its start (the kernel makes it on each read).
func (c *CodeSampler) Sample() (int64, error) {
	n := 0
	for {
		if n == len(c.buf) {
			if n >= smapsLimit {
				return 0, fmt.Errorf("translated code: smaps longer than %d bytes", smapsLimit)
			}
			grown := make([]byte, min(2*n, smapsLimit))
			copy(grown, c.buf)
			c.buf = grown
		}
		m, err := unix.Pread(c.fd, c.buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("translated code: read smaps: %w", err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	return codeBufferRSS(c.buf[:n])
}

// Close releases the listing.
func (c *CodeSampler) Close() error { return unix.Close(c.fd) }

// codeBufferRSS parses an smaps listing and returns the Rss, in bytes, of
// the largest anonymous executable mapping. It allocates nothing unless
// it fails.
func codeBufferRSS(b []byte) (int64, error) {
	var best, bestRSS int64 = -1, 0
	candidate := false // the mapping whose fields follow is anonymous and executable
	var size int64
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		key, rest := nextField(line)
		if len(key) == 0 {
			continue
		}
		if key[len(key)-1] != ':' {
			// A mapping's first line: range, perms, offset, dev, inode[, path].
			perms, rest := nextField(rest)
			_, rest = nextField(rest)
			_, rest = nextField(rest)
			inode, rest := nextField(rest)
			path, _ := nextField(rest)
			candidate = len(perms) == 4 && perms[2] == 'x' && string(inode) == "0" && len(path) == 0
			continue
		}
		isSize, isRss := string(key) == "Size:", string(key) == "Rss:"
		if !candidate || !isSize && !isRss {
			continue
		}
		num, rest := nextField(rest)
		unit, _ := nextField(rest)
		kib, ok := parseKiB(num)
		if !ok || string(unit) != "kB" {
			return 0, fmt.Errorf("smaps: bad %s %q %q", key, num, unit)
		}
		if isSize {
			size = kib
		} else if size > best {
			best, bestRSS = size, kib<<10
		}
	}
	if best < 0 {
		return 0, errors.New("smaps: no anonymous executable mapping (no code buffer)")
	}
	return bestRSS, nil
}

// nextField splits off the first space-separated field of b.
func nextField(b []byte) (field, rest []byte) {
	b = bytes.TrimLeft(b, " \t")
	i := bytes.IndexAny(b, " \t")
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i:]
}

// parseKiB reads a decimal count of KiB, at most 2^40 (a PiB).
func parseKiB(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 13 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v <= 1<<40
}
