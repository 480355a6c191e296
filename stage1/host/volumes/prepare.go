// Package volumes carries out a volume plan (stage1/translate/volplan) on
// the host: it checks host sources, creates the empty volumes with their
// mode and owner, and makes every mount point inside its app's rootfs,
// confined to that rootfs.
package volumes

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/volplan"
	"golang.org/x/sys/unix"
)

// Share is a host volume as the pod share shows it: HostPath (its source,
// symlinks resolved) at contract.VolumeMount(Name) in the guest.
type Share struct {
	Name      string
	HostPath  string
	ReadOnly  bool
	Recursive bool
}

// Prepared is the host side done: QEMU's extra shares and each app's binds.
type Prepared struct {
	Shares []Share
	Binds  map[string][]volplan.Bind
}

// Prepare checks every host volume's source (an existing directory, not
// itself a symlink; for recursive=false, it notes whether mounts below it
// need hiding),
// creates each empty volume under <stage1Rootfs>/EmptyDir with its mode and
// owner, and creates every mount point inside its app's rootfs (rootfs maps
// app names to host paths).
func Prepare(p *volplan.Plan, stage1Rootfs string, rootfs map[string]string) (*Prepared, error) {
	out := &Prepared{Binds: map[string][]volplan.Bind{}}
	for _, v := range p.Volumes {
		switch v.Kind {
		case volplan.KindHost:
			real, err := checkSource(v)
			if err != nil {
				return nil, err
			}
			out.Shares = append(out.Shares, Share{Name: v.Name, HostPath: real, ReadOnly: v.ReadOnly, Recursive: v.Recursive})
		case volplan.KindEmpty:
			if err := makeEmpty(filepath.Join(stage1Rootfs, contract.EmptyVolumesDir), v); err != nil {
				return nil, fmt.Errorf("empty volume %q: %w", v.Name, err)
			}
		}
	}
	for _, m := range p.Mounts {
		v, _ := p.Volume(m.Volume)
		root, ok := rootfs[m.App]
		if !ok {
			return nil, fmt.Errorf("app %s: rootfs unknown: %w", m.App, volplan.ErrInvalid)
		}
		target, err := MakeTarget(root, m.Path)
		if err != nil {
			return nil, fmt.Errorf("app %s: mount point %q of volume %q: %w", m.App, m.Path, m.Volume, err)
		}
		for _, b := range out.Binds[m.App] {
			if b.Target == target {
				return nil, fmt.Errorf("app %s: two volumes mounted at %s: %w", m.App, target, volplan.ErrInvalid)
			}
		}
		out.Binds[m.App] = append(out.Binds[m.App], volplan.Bind{Source: v.GuestPath(), Target: target, ReadOnly: m.ReadOnly})
	}
	return out, nil
}

// checkSource returns the host directory the pod share binds for host
// volume v: its source, which must be a directory and not itself a
// symlink, with the symlinks above it resolved.
func checkSource(v volplan.Volume) (string, error) {
	st, err := os.Lstat(v.Source)
	if err != nil {
		return "", fmt.Errorf("host volume %q: source: %w", v.Name, err)
	}
	if st.Mode()&os.ModeSymlink != 0 {
		return "", fmt.Errorf("host volume %q: source %s is a symlink; name its target instead: %w", v.Name, v.Source, volplan.ErrInvalid)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("host volume %q: source %s is not a directory (only directories can be shared with the VM): %w", v.Name, v.Source, volplan.ErrInvalid)
	}
	// Symlinks higher up are the host administrator's: resolve them once,
	// here, so the bind gets a plain path.
	real, err := filepath.EvalSymlinks(v.Source)
	if err != nil {
		return "", fmt.Errorf("host volume %q: %w", v.Name, err)
	}
	return real, nil
}

// makeEmpty creates (or reuses) the empty volume's directory under dir and
// gives it v's mode and owner, never following a symlink.
func makeEmpty(dir string, v volplan.Volume) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(dir, v.Name)
	if err := unix.Mkdir(p, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create %s: %w", p, err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, v.UID, v.GID); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	mode := uint32(v.Mode.Perm())
	if v.Mode&os.ModeSetuid != 0 {
		mode |= unix.S_ISUID
	}
	if v.Mode&os.ModeSetgid != 0 {
		mode |= unix.S_ISGID
	}
	if v.Mode&os.ModeSticky != 0 {
		mode |= unix.S_ISVTX
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	return nil
}

// MakeTarget creates the directory name inside the rootfs at root (every
// missing component, mode 0755) and returns its path inside that root with
// symlinks resolved. Resolution is the kernel's, confined to the rootfs
// (openat2 RESOLVE_IN_ROOT): absolute symlinks and ".." stay inside it, as
// they would for a process chrooted there. The result is never "/".
func MakeTarget(root, name string) (string, error) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	rootFD, err := unix.Open(realRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(rootFD)
	// Walk the path one component at a time: open what exists, create
	// what does not in its (resolved) parent, and follow a symlink to a
	// missing directory by walking its target instead.
	pending := strings.Split(name, "/")
	cur, links := "/", 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		if c == "" || c == "." {
			continue
		}
		next := path.Join(cur, c)
		if c == ".." {
			next = cur + "/.."
		}
		fd, err := openIn(rootFD, next, unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) {
			target, isLink, merr := makeMissing(rootFD, cur, c, next)
			if merr != nil {
				return "", merr
			}
			if isLink {
				if links++; links > 40 {
					return "", fmt.Errorf("%s: too many symlinks: %w", name, unix.ELOOP)
				}
				if strings.HasPrefix(target, "/") {
					cur = "/"
				}
				pending = append(strings.Split(target, "/"), pending...)
				continue
			}
			fd, err = openIn(rootFD, next, unix.O_PATH|unix.O_DIRECTORY)
		}
		if errors.Is(err, unix.ENOTDIR) {
			return "", fmt.Errorf("%s in the app's rootfs is not a directory: %w", next, volplan.ErrInvalid)
		}
		if err != nil {
			return "", fmt.Errorf("%s in the app's rootfs: %w", next, err)
		}
		cur, err = pathInRoot(fd, realRoot)
		unix.Close(fd)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
	}
	if cur == "/" {
		return "", fmt.Errorf("mount point %q is the app's root directory: %w", name, volplan.ErrInvalid)
	}
	return cur, nil
}

// makeMissing deals with c, a component of the path MakeTarget walks that
// is missing in cur (next is cur/c): a symlink (to a missing directory)
// gives its target, to walk instead; anything else is created as a
// directory.
func makeMissing(rootFD int, cur, c, next string) (target string, isLink bool, err error) {
	pfd, err := openIn(rootFD, cur, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", false, err
	}
	defer unix.Close(pfd)
	if target, err := readlinkat(pfd, c); err == nil {
		return target, true, nil
	}
	if err := unix.Mkdirat(pfd, c, 0o755); err != nil {
		return "", false, fmt.Errorf("create %s in the app's rootfs: %w", next, err)
	}
	return "", false, nil
}

// pathInRoot is where fd is, as a path inside realRoot.
func pathInRoot(fd int, realRoot string) (string, error) {
	got, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	rel, ok := strings.CutPrefix(got, realRoot)
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", fmt.Errorf("resolved to %s, outside the app's rootfs %s: %w", got, realRoot, volplan.ErrInvalid)
	}
	if rel == "" {
		rel = "/"
	}
	return rel, nil
}

// readlinkat reads the symlink name in the directory dirFD.
func readlinkat(dirFD int, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dirFD, name, buf)
	if err != nil {
		return "", err
	}
	if n == len(buf) {
		return "", fmt.Errorf("symlink %s: target too long", name)
	}
	return string(buf[:n]), nil
}

// openIn opens name below rootFD as if rootFD were "/".
func openIn(rootFD int, name string, flags int) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(rootFD, name, &how)
		if (err == unix.EAGAIN || err == unix.EINTR) && tries < 64 {
			continue
		}
		return fd, err
	}
}
