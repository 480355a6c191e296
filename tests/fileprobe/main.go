// Command fileprobe checks, from inside a pod's app, that every kind of file
// behaves as on a local file system in a directory: FIFOs, unix sockets,
// device nodes, hard links, xattrs, writes through a shared mapping kept
// after close, a file grown with fallocate, an unlinked file reopened through
// /proc/self/fd, and (with a second app, "peer") locks and shared mappings
// seen across apps. It prints "<check> <dir> ok" or "<check> <dir> FAIL:
// <why>" per check. The e2e tests run it (tests/files_test.go).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: fileprobe local DIR... | holder DIR | peer DIR | mapfill FILE")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "local":
		for _, dir := range os.Args[2:] {
			for _, c := range []struct {
				name string
				fn   func(string) error
			}{{"fifo", fifo}, {"socket", socket}, {"mknod", mknod}, {"hardlink", hardlink}, {"xattr", xattr}, {"mmapwrite", mmapWrite}, {"fallocate", fallocateGrow}, {"unlinked", unlinked}} {
				report(c.name, dir, c.fn(dir))
			}
		}
	case "mapfill":
		// The pod's end must keep what this leaves in the page cache.
		if err := mapFill(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "mapfill: %v\n", err)
			os.Exit(1)
		}
	case "holder":
		report("holder", os.Args[2], holder(os.Args[2]))
	case "peer":
		report("peer", os.Args[2], peer(os.Args[2]))
	}
}

func report(check, dir string, err error) {
	if err != nil {
		fmt.Printf("%s %s FAIL: %v\n", check, dir, err)
		return
	}
	fmt.Printf("%s %s ok\n", check, dir)
}

// mapFill fills a new 64 KiB file with 'y' through a shared mapping and
// exits without msync, munmap or close: the bytes are only in the page
// cache, dirty.
func mapFill(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	const size = 64 << 10
	if err := f.Truncate(size); err != nil {
		return err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	copy(m, bytes.Repeat([]byte{'y'}, size))
	return nil
}

// mmapWrite writes through a shared mapping, then unmaps and closes the
// file without msync, as many programs do: the bytes must stay (a guest
// kernel that drops the file's inode at close must write them back first).
// Reading the file again shows what the share's server has.
func mmapWrite(dir string) error {
	p := filepath.Join(dir, "probe-mmap")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	const size = 3 * 4096
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return err
	}
	want := bytes.Repeat([]byte("mapped!\n"), size/8)
	copy(m, want)
	if err := unix.Munmap(m); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return holds(p, want)
}

// fallocateGrow grows a file as journald grows its journal files: a
// header written, fallocate(2) (mode 0) from the file's end, then a write
// through a shared mapping of the new part. The file must then hold the
// header, the zeros fallocate added and what the mapping wrote.
func fallocateGrow(dir string) error {
	p := filepath.Join(dir, "probe-falloc")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	const size = 1 << 20
	header, tail := []byte("header\n"), []byte("tail\n")
	if _, err := f.WriteAt(header, 0); err != nil {
		return err
	}
	if err := unix.Fallocate(int(f.Fd()), 0, int64(len(header)), size-int64(len(header))); err != nil {
		return fmt.Errorf("fallocate: %w", err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	copy(m[size-4096:], tail)
	if err := unix.Munmap(m); err != nil {
		return err
	}
	want := make([]byte, size)
	copy(want, header)
	copy(want[size-4096:], tail)
	return holds(p, want)
}

// holds checks that the file at p, read again, is want.
func holds(p string, want []byte) error {
	got, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("the file holds %d bytes, %d of them as written", len(got), matching(got, want))
	}
	return nil
}

// matching counts the leading bytes a and b share.
func matching(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func fifo(dir string) error {
	p := filepath.Join(dir, "probe-fifo")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		return err
	}
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(p)
		got <- string(b)
	}()
	if err := os.WriteFile(p, []byte("through the fifo"), 0); err != nil {
		return err
	}
	select {
	case s := <-got:
		if s != "through the fifo" {
			return fmt.Errorf("read %q", s)
		}
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the reader got nothing")
	}
}

func socket(dir string) error {
	p := filepath.Join(dir, "probe-sock")
	l, err := net.Listen("unix", p)
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("through the socket"))
			c.Close()
		}
	}()
	c, err := net.Dial("unix", p)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 64)
	n, _ := c.Read(b)
	if string(b[:n]) != "through the socket" {
		return fmt.Errorf("read %q", b[:n])
	}
	return nil
}

func mknod(dir string) error {
	p := filepath.Join(dir, "probe-null")
	if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write([]byte("into the null device"))
	return err
}

func hardlink(dir string) error {
	a, b := filepath.Join(dir, "probe-file"), filepath.Join(dir, "probe-link")
	if err := os.WriteFile(a, []byte("x"), 0o644); err != nil {
		return err
	}
	if err := os.Link(a, b); err != nil {
		return err
	}
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return err
	}
	if err := unix.Stat(b, &sb); err != nil {
		return err
	}
	if sa.Ino != sb.Ino || sb.Nlink != 2 {
		return fmt.Errorf("inodes %d and %d, %d links", sa.Ino, sb.Ino, sb.Nlink)
	}
	return nil
}

func xattr(dir string) error {
	p := filepath.Join(dir, "probe-xattr")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return err
	}
	if err := unix.Setxattr(p, "user.probe", []byte("value"), 0); err != nil {
		return err
	}
	b := make([]byte, 64)
	n, err := unix.Getxattr(p, "user.probe", b)
	if err != nil {
		return err
	}
	if string(b[:n]) != "value" {
		return fmt.Errorf("read %q", b[:n])
	}
	return nil
}

func unlinked(dir string) error {
	p := filepath.Join(dir, "probe-unlinked")
	if err := os.WriteFile(p, []byte("still here"), 0o644); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.Remove(p); err != nil {
		return err
	}
	b, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return err
	}
	if string(b) != "still here" {
		return fmt.Errorf("read %q", b)
	}
	// Open for writing, unlinked, opened again for writing (the usual
	// anonymous temporary file): writes through either are one file.
	w, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer w.Close()
	if err := os.Remove(p); err != nil {
		return err
	}
	again, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(w.Fd())), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open again for writing: %w", err)
	}
	defer again.Close()
	if _, err := again.WriteAt([]byte("written again"), 0); err != nil {
		return err
	}
	got := make([]byte, 13)
	if _, err := w.ReadAt(got, 0); err != nil || string(got) != "written again" {
		return fmt.Errorf("read back %q, %v", got, err)
	}
	// Truncated through one, shorter through the other.
	if err := again.Truncate(7); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	n, _ := w.ReadAt(got, 0)
	if string(got[:n]) != "written" {
		return fmt.Errorf("after truncating to 7 bytes, read back %q", got[:n])
	}
	return nil
}

// holder takes an flock on dir/flocked and an fcntl lock on dir/fcntl-locked
// (apart: 9p turns an flock into a POSIX lock of the whole file, which
// would conflict with the process's own fcntl lock of the same file),
// writes through a shared mapping of dir/mapped, then says so (dir/held)
// and waits for the peer to be done (dir/peer-done).
func holder(dir string) error {
	open := func(name string) (*os.File, error) {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, err
		}
		return f, f.Truncate(4096)
	}
	fl, err := open("flocked")
	if err != nil {
		return err
	}
	defer fl.Close()
	if err := unix.Flock(int(fl.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("flock: %w", err)
	}
	fc, err := open("fcntl-locked")
	if err != nil {
		return err
	}
	defer fc.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	if err := unix.FcntlFlock(fc.Fd(), unix.F_SETLK, &lk); err != nil {
		return fmt.Errorf("fcntl lock: %w", err)
	}
	mf, err := open("mapped")
	if err != nil {
		return err
	}
	defer mf.Close()
	m, err := unix.Mmap(int(mf.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	copy(m, "written through a shared mapping")
	if err := os.WriteFile(filepath.Join(dir, "held"), nil, 0o644); err != nil {
		return err
	}
	return waitFor(filepath.Join(dir, "peer-done"))
}

// peer checks, while holder holds them, that both locks are held against it
// and that the mapping's bytes are visible, then says it is done.
func peer(dir string) error {
	defer os.WriteFile(filepath.Join(dir, "peer-done"), nil, 0o644)
	if err := waitFor(filepath.Join(dir, "held")); err != nil {
		return err
	}
	open := func(name string) (*os.File, error) { return os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0) }
	fl, err := open("flocked")
	if err != nil {
		return err
	}
	defer fl.Close()
	if err := unix.Flock(int(fl.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("flock of a held file: %v, want EWOULDBLOCK", err)
	}
	fc, err := open("fcntl-locked")
	if err != nil {
		return err
	}
	defer fc.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	if err := unix.FcntlFlock(fc.Fd(), unix.F_SETLK, &lk); !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
		return fmt.Errorf("fcntl lock of a held range: %v, want EAGAIN", err)
	}
	mf, err := open("mapped")
	if err != nil {
		return err
	}
	defer mf.Close()
	m, err := unix.Mmap(int(mf.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	if want := []byte("written through a shared mapping"); !bytes.HasPrefix(m, want) {
		return fmt.Errorf("the mapping shows %q", m[:len(want)])
	}
	return nil
}

func waitFor(p string) error {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s never appeared", p)
}
