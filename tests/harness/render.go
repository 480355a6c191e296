package harness

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"
)

// imageInfo is what rkt's image store knows about an ACI once fetched: its
// ID and its manifest, both as the exact bytes of the archive (rkt copies
// those bytes verbatim into the pod) and parsed.
type imageInfo struct {
	ID           types.Hash
	ManifestJSON []byte
	Manifest     schema.ImageManifest
}

// storeKeyHexLen is how much of the sha512 rkt's store keeps in an image ID
// ("sha512-" plus half the hex digest); pod manifests carry IDs of that form.
const storeKeyHexLen = sha512.Size

// openACI returns the uncompressed tar stream of an ACI. ACIs may be plain
// tar or compressed; rkt hashes the uncompressed tar, so we decompress here
// (xz is not in the standard library and none of our images use it).
func openACI(p string) (io.Reader, func() error, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(f)
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("gzip header of %s: %w", p, err)
		}
		return zr, f.Close, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), f.Close, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		f.Close()
		return nil, nil, fmt.Errorf("%s is xz-compressed, which the harness does not read", p)
	}
	return br, f.Close, nil
}

// walkACI feeds every entry of the ACI at p to fn and returns the image ID
// computed over the whole uncompressed stream, as rkt's store does.
func walkACI(p string, fn func(h *tar.Header, r io.Reader) error) (types.Hash, error) {
	r, closeFn, err := openACI(p)
	if err != nil {
		return types.Hash{}, err
	}
	defer closeFn()
	sum := sha512.New()
	tee := io.TeeReader(r, sum)
	tr := tar.NewReader(tee)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return types.Hash{}, fmt.Errorf("read %s: %w", p, err)
		}
		if err := fn(h, tr); err != nil {
			return types.Hash{}, fmt.Errorf("%s: %s: %w", p, h.Name, err)
		}
	}
	// The tar end marker and padding are part of what rkt hashes.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return types.Hash{}, fmt.Errorf("read %s: %w", p, err)
	}
	id, err := types.NewHash("sha512-" + hex.EncodeToString(sum.Sum(nil))[:storeKeyHexLen])
	if err != nil {
		return types.Hash{}, err
	}
	return *id, nil
}

// inspectACI reads an ACI's ID and manifest without extracting anything.
func inspectACI(p string) (*imageInfo, error) {
	info := &imageInfo{}
	id, err := walkACI(p, func(h *tar.Header, r io.Reader) error {
		if path.Clean(h.Name) == "manifest" {
			b, err := io.ReadAll(r)
			info.ManifestJSON = b
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	info.ID = id
	return info, info.parse(p)
}

func (info *imageInfo) parse(p string) error {
	if info.ManifestJSON == nil {
		return fmt.Errorf("%s has no manifest", p)
	}
	if err := json.Unmarshal(info.ManifestJSON, &info.Manifest); err != nil {
		return fmt.Errorf("manifest of %s: %w", p, err)
	}
	return nil
}

// renderACI extracts the ACI at p (manifest and rootfs/) into dest, keeping
// modes, owners (when root), times, links and device nodes, the way rkt's
// renderer does for --no-overlay pods and for its tree store.
func renderACI(p, dest string) (*imageInfo, error) {
	x := &extractor{root: dest, dirs: map[string]bool{".": true}}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, err
	}
	info := &imageInfo{}
	id, err := walkACI(p, func(h *tar.Header, r io.Reader) error {
		if path.Clean(h.Name) == "manifest" && h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			info.ManifestJSON = b
			r = bytes.NewReader(b)
		}
		return x.entry(h, r)
	})
	if err != nil {
		return nil, err
	}
	if err := x.finish(); err != nil {
		return nil, err
	}
	info.ID = id
	return info, info.parse(p)
}

// extractor writes tar entries under root without ever following a symlink
// that the archive itself planted: the stage1 image is trusted, but a test
// image that escaped its rootfs would damage the host running the tests.
type extractor struct {
	root    string
	dirs    map[string]bool // archive-relative dirs known to be real dirs
	dirTime []dirTime
}

type dirTime struct {
	path string
	t    time.Time
}

func (x *extractor) entry(h *tar.Header, r io.Reader) error {
	name := path.Clean(strings.TrimPrefix(h.Name, "./"))
	if name == "." {
		return nil
	}
	if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("unsafe path %q", h.Name)
	}
	if err := x.parents(name); err != nil {
		return err
	}
	p := filepath.Join(x.root, filepath.FromSlash(name))
	mode := h.FileInfo().Mode()

	if h.Typeflag != tar.TypeDir {
		// Later entries replace earlier ones, as in rkt's extraction.
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("%s exists and is not a directory", name)
		}
		x.dirs[name] = true
		x.dirTime = append(x.dirTime, dirTime{p, h.ModTime})
	case tar.TypeReg:
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.Symlink(h.Linkname, p); err != nil {
			return err
		}
		if err := x.owner(p, h); err != nil {
			return err
		}
		return unix.Lutimes(p, []unix.Timeval{unix.NsecToTimeval(h.ModTime.UnixNano()), unix.NsecToTimeval(h.ModTime.UnixNano())})
	case tar.TypeLink:
		target := path.Clean(h.Linkname)
		if path.IsAbs(target) || target == ".." || strings.HasPrefix(target, "../") {
			return fmt.Errorf("unsafe hard link target %q", h.Linkname)
		}
		if err := x.parents(target); err != nil {
			return err
		}
		return os.Link(filepath.Join(x.root, filepath.FromSlash(target)), p)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[h.Typeflag]
		dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		if err := unix.Mknod(p, kind|0o600, int(dev)); err != nil {
			return err
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported entry type %q", h.Typeflag)
	}
	// Owner before mode: chown clears the set-id bits.
	if err := x.owner(p, h); err != nil {
		return err
	}
	if err := os.Chmod(p, mode&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeDir {
		return os.Chtimes(p, h.ModTime, h.ModTime)
	}
	return nil
}

func (x *extractor) owner(p string, h *tar.Header) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return os.Lchown(p, h.Uid, h.Gid)
}

// parents makes sure every directory above name exists as a real directory
// inside root, creating missing ones like tar does.
func (x *extractor) parents(name string) error {
	dir := path.Dir(name)
	if x.dirs[dir] {
		return nil
	}
	if err := x.parents(dir); err != nil {
		return err
	}
	p := filepath.Join(x.root, filepath.FromSlash(dir))
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory (symlink?) but the archive puts files under it", dir)
	}
	x.dirs[dir] = true
	return nil
}

// finish sets directory times last: creating their content changed them.
func (x *extractor) finish() error {
	for i := len(x.dirTime) - 1; i >= 0; i-- {
		d := x.dirTime[i]
		if err := os.Chtimes(d.path, d.t, d.t); err != nil {
			return err
		}
	}
	return nil
}
