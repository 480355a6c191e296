package hypervisor

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// oomCounter counts the out-of-memory kills in run's own memory cgroup,
// which QEMU is started in: a QEMU killed by SIGKILL while the count rose
// was most likely the kernel's doing, and the error can say so.
type oomCounter struct {
	// file is the cgroup file holding the count ("" when none is known).
	file string
}

// ownOOMCounter finds run's memory cgroup (v2, or v1's memory controller).
func ownOOMCounter() oomCounter {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return oomCounter{}
	}
	return oomCounter{file: oomFile(string(b), "/sys/fs/cgroup")}
}

// oomFile is the file that counts OOM kills for the cgroup named in a
// /proc/<pid>/cgroup listing, with cgroup file systems mounted under root:
// v1's memory controller (memory.oom_control) if it has one, else v2's
// memory.events. "" if neither is named.
func oomFile(procCgroup, root string) string {
	var v2 string
	for _, line := range strings.Split(procCgroup, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || !strings.HasPrefix(f[2], "/") {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				return filepath.Join(root, "memory", f[2], "memory.oom_control")
			}
		}
		if f[0] == "0" && f[1] == "" {
			v2 = filepath.Join(root, f[2], "memory.events")
			if _, err := os.Stat(filepath.Join(root, "unified")); err == nil {
				v2 = filepath.Join(root, "unified", f[2], "memory.events")
			}
		}
	}
	return v2
}

// kills reads the count; ok is false when it cannot.
func (c oomCounter) kills() (n int64, ok bool) {
	if c.file == "" {
		return 0, false
	}
	f, err := os.Open(c.file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), "oom_kill "); found {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
