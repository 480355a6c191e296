// Package memcg bounds the memory of a pod's VM: a memory cgroup of the
// pod's own, below run's, that QEMU joins before it runs (the jailer
// writes itself into it). Without one, QEMU would be bounded only by what
// bounds run, shared with every other pod started the same way.
package memcg

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Root is where the cgroup file systems are mounted.
const Root = "/sys/fs/cgroup"

// ErrUnavailable means the host offers no memory cgroup run can make one
// below: no memory controller, or (cgroup v2) one run's cgroup cannot
// hand to a child because processes live in it.
var ErrUnavailable = errors.New("no memory cgroup for the pod's VM")

// Group is one pod's memory cgroup.
type Group struct {
	// Dir is the cgroup's directory.
	Dir string
	// V2: the unified hierarchy (memory.max), else v1's memory
	// controller (memory.limit_in_bytes).
	V2 bool
}

// Locate finds the memory cgroup of the process whose /proc/<pid>/cgroup
// is procCgroup, with the cgroup file systems under root: v1's memory
// controller if it has one, else its cgroup in the unified hierarchy
// (under root/unified on a hybrid host). ok is false if neither is named.
// It is pure but for a stat of root/unified.
func Locate(procCgroup, root string) (g Group, ok bool) {
	var unified string
	for _, line := range strings.Split(procCgroup, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || !strings.HasPrefix(f[2], "/") {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				return Group{Dir: filepath.Join(root, "memory", f[2])}, true
			}
		}
		if f[0] == "0" && f[1] == "" {
			unified = f[2]
		}
	}
	if unified == "" {
		return Group{}, false
	}
	if _, err := os.Stat(filepath.Join(root, "unified")); err == nil {
		root = filepath.Join(root, "unified")
	}
	return Group{Dir: filepath.Join(root, unified), V2: true}, true
}

// Own is this process's memory cgroup (Locate of /proc/self/cgroup).
func Own() (Group, bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return Group{}, false
	}
	return Locate(string(b), Root)
}

// Parent is run's own memory cgroup (Own), below which a pod's is made,
// if it has the memory controller.
func Parent() (Group, error) {
	g, ok := Own()
	if !ok {
		return Group{}, fmt.Errorf("%w: no memory controller", ErrUnavailable)
	}
	if g.V2 {
		c, err := os.ReadFile(filepath.Join(g.Dir, "cgroup.controllers"))
		if err != nil || !hasWord(string(c), "memory") {
			return Group{}, fmt.Errorf("%w: the unified hierarchy offers no memory controller here", ErrUnavailable)
		}
	}
	return g, nil
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// Name is the cgroup's name for the pod of UUID uuid.
func Name(uuid string) string { return "stage1-kvm-" + uuid }

// Create makes the cgroup name below parent with a memory limit of limit
// bytes. On v2 the parent must hand the memory controller down: if it
// does not and cannot (processes live in it), ErrUnavailable.
func Create(parent Group, name string, limit int64) (Group, error) {
	if limit <= 0 {
		return Group{}, fmt.Errorf("memory limit %d: must be positive", limit)
	}
	if parent.V2 {
		if err := enableMemory(parent.Dir); err != nil {
			return Group{}, err
		}
	}
	g := Group{Dir: filepath.Join(parent.Dir, name), V2: parent.V2}
	if err := os.Mkdir(g.Dir, 0o755); err != nil {
		return Group{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err := os.WriteFile(filepath.Join(g.Dir, g.limitFile()), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		g.Remove()
		return Group{}, fmt.Errorf("set the memory limit of %s: %w", g.Dir, err)
	}
	return g, nil
}

// enableMemory makes the memory controller available to parent's
// children (cgroup v2).
func enableMemory(parent string) error {
	b, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if hasWord(string(b), "memory") {
		return nil
	}
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory"), 0o644); err != nil {
		return fmt.Errorf("%w: %s cannot hand the memory controller down (%w)", ErrUnavailable, parent, err)
	}
	return nil
}

func (g Group) limitFile() string {
	if g.V2 {
		return "memory.max"
	}
	return "memory.limit_in_bytes"
}

// Procs is the file a process writes "0" to, to join the cgroup.
func (g Group) Procs() string { return filepath.Join(g.Dir, "cgroup.procs") }

// OOMFile is the cgroup's file that counts its out-of-memory kills
// (a line "oom_kill N").
func (g Group) OOMFile() string {
	if g.V2 {
		return filepath.Join(g.Dir, "memory.events")
	}
	return filepath.Join(g.Dir, "memory.oom_control")
}

// Limit reads the cgroup's memory limit.
func (g Group) Limit() (int64, error) { return readInt(filepath.Join(g.Dir, g.limitFile())) }

// Peak reads the most memory the cgroup has held (v2: since Linux 5.19).
func (g Group) Peak() (int64, error) {
	if g.V2 {
		return readInt(filepath.Join(g.Dir, "memory.peak"))
	}
	return readInt(filepath.Join(g.Dir, "memory.max_usage_in_bytes"))
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// removeTries bounds Remove's retries: a process killed a moment ago may
// still be leaving the cgroup.
const removeTries = 50

// Remove removes the cgroup once the processes in it are gone; a cgroup
// already gone is no error.
func (g Group) Remove() error {
	var err error
	for i := 0; i < removeTries; i++ {
		err = os.Remove(g.Dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("remove the memory cgroup %s: %w", g.Dir, err)
}

// OverheadMiB is what QEMU may hold beyond guest RAM and TCG's
// translation cache: its own code and data, device buffers, the 9p
// server's, and the page cache of the files it reads and writes for the
// guest (counted to the cgroup too, and reclaimed at the limit). A
// 160 MiB guest's QEMU peaked at 94 MiB of RSS with a 32 MiB cache
// (docs/benchmarks.md).
const OverheadMiB = 64

// RunReserveMiB is what a pod's cgroup leaves to run in the cgroup run is
// in (CapToParent): run itself needs far less (its Go heap, the files it
// reads), but when that cgroup's own limit is reached the kernel may kill
// run, the only other task there, rather than QEMU, and the pod ends with
// no word of why.
const RunReserveMiB = 32

// CapToParent bounds a pod's cgroup limit so that, in a parent whose own
// limit is parentLimit, the pod's cgroup reaches its limit first: then
// the kernel's out-of-memory killer looks only at QEMU's cgroup.
// ok is false when nothing is left for QEMU at all.
func CapToParent(limit, parentLimit int64) (capped int64, ok bool) {
	reserve := int64(RunReserveMiB) << 20
	if parentLimit <= 0 || parentLimit-reserve >= limit {
		return limit, true
	}
	if parentLimit <= reserve {
		return 0, false
	}
	return parentLimit - reserve, true
}

// LimitBytes is the memory bound of a VM of guestMiB of RAM whose QEMU
// keeps a TCG translation cache of tcgCacheMiB (0 under KVM).
func LimitBytes(guestMiB, tcgCacheMiB int) int64 {
	return int64(guestMiB+tcgCacheMiB+OverheadMiB) << 20
}
