package hypervisor

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/memcg"
)

// oomCounter counts the out-of-memory kills in QEMU's memory cgroup (the
// pod's, or run's own when the host gives the pod none): a QEMU killed by SIGKILL while the count rose
// was most likely the kernel's doing, and the error can say so.
type oomCounter struct {
	// file is the cgroup file holding the count ("" when none is known).
	file string
}

// ownOOMCounter finds run's memory cgroup (v2, or v1's memory controller).
func ownOOMCounter() oomCounter {
	g, ok := memcg.Own()
	if !ok {
		return oomCounter{}
	}
	return oomCounter{file: g.OOMFile()}
}

// cgroupOOMCounter counts the out-of-memory kills in the memory cgroup
// dir: v1's memory.oom_control, or v2's memory.events.
func cgroupOOMCounter(dir string) oomCounter {
	_, err := os.Stat(filepath.Join(dir, "memory.oom_control"))
	return oomCounter{file: memcg.Group{Dir: dir, V2: err != nil}.OOMFile()}
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
