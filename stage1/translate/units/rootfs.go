package units

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// maxDBSize bounds how much of an app's /etc/passwd or /etc/group is read.
// The rootfs comes from an image, so it is untrusted: a multi-gigabyte file
// must not exhaust the host's memory.
const maxDBSize = 16 << 20

// rootfs gives read access to files of an app's rootfs on the host, with
// every path resolved as if the rootfs were "/": absolute symlinks and ".."
// cannot leave it. The image is untrusted, and what we read from it (user
// databases, file owners) decides which uid the app runs as, so a symlink
// /etc/passwd -> /../../../etc/passwd must read the rootfs's own file (or
// nothing), never the host's.
type rootfs struct {
	dir  string
	fd   int
	open bool
}

// openRootfs opens dir for confined lookups. Nothing is opened until a
// lookup needs it, so apps with numeric users and absolute paths need no
// rootfs at all.
func openRootfs(dir string) *rootfs { return &rootfs{dir: dir, fd: -1} }

func (r *rootfs) ensure() error {
	if r.open {
		return nil
	}
	if r.dir == "" {
		return errors.New("the app's rootfs path is not known")
	}
	fd, err := unix.Open(r.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs %s: %w", r.dir, err)
	}
	r.fd, r.open = fd, true
	return nil
}

func (r *rootfs) Close() {
	if r.open {
		unix.Close(r.fd)
		r.open = false
	}
}

// openIn opens name (taken relative to the rootfs whether or not it starts
// with "/") with openat2's RESOLVE_IN_ROOT. Magic links (/proc/self/...)
// are refused too: they point wherever the kernel likes. There is no
// fallback for kernels without openat2 (before 5.6): an unconfined lookup
// is exactly what must not happen.
func (r *rootfs) openIn(name string, flags int) (int, error) {
	if err := r.ensure(); err != nil {
		return -1, err
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(r.fd, name, &how)
		switch {
		case err == nil:
			return fd, nil
		// The kernel asks for a retry when a rename raced with the
		// lookup; EINTR needs no explanation.
		case (err == unix.EAGAIN || err == unix.EINTR) && tries < 64:
			continue
		case err == unix.ENOSYS:
			return -1, fmt.Errorf("open %s in rootfs %s: openat2 unavailable (Linux 5.6 or later is required): %w", name, r.dir, err)
		default:
			return -1, &os.PathError{Op: "open in rootfs " + r.dir, Path: name, Err: err}
		}
	}
}

// readFile reads a regular file of the rootfs, at most maxDBSize bytes. A
// FIFO or device planted in the image must not block or feed us forever:
// the file is opened non-blocking and must be a regular file.
func (r *rootfs) readFile(name string) ([]byte, error) {
	fd, err := r.openIn(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat %s in rootfs %s: %w", name, r.dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s in rootfs %s is not a regular file", name, r.dir)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDBSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s in rootfs %s: %w", name, r.dir, err)
	}
	if len(data) > maxDBSize {
		return nil, fmt.Errorf("%s in rootfs %s is larger than %d bytes", name, r.dir, maxDBSize)
	}
	return data, nil
}

// stat returns the status of name in the rootfs, following symlinks
// inside it.
func (r *rootfs) stat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := r.openIn(name, unix.O_PATH)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return st, fmt.Errorf("stat %s in rootfs %s: %w", name, r.dir, err)
	}
	return st, nil
}
