package tests

import (
	"fmt"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// Eight pods started at the same moment, each on the default network, all
// run correctly: each prints its own address and exits with its own code,
// and each leaves nothing behind.
func TestConcurrentPods(t *testing.T) {
	const n = 8
	s := harness.NewStage0(t)
	pods := make([]*harness.Pod, n)
	for i := range pods {
		pods[i] = s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app",
			fmt.Sprintf(`echo "pod %d $(ip -4 -o addr show eth0 2>/dev/null | awk '{print $4}')"; exit %d`, i, 10+i))))
	}
	results := make([]harness.RunResult, n)
	runs := make([]*harness.Running, n)
	for i, p := range pods {
		runs[i] = p.Start(t, harness.RunOpts{})
	}
	// All run at once; collecting them in turn changes nothing.
	for i, r := range runs {
		results[i] = r.Wait()
	}
	addrs := map[string]int{}
	for i, r := range results {
		if r.ExitCode != 10+i {
			t.Errorf("pod %d: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", i, r.ExitCode, 10+i, r.Stdout, r.Stderr)
			continue
		}
		var got int
		var addr string
		if _, err := fmt.Sscanf(r.Stdout, "pod %d %s", &got, &addr); err != nil || got != i {
			t.Errorf("pod %d: stdout %q", i, r.Stdout)
			continue
		}
		if j, dup := addrs[addr]; dup {
			t.Errorf("pods %d and %d both got %s", j, i, addr)
		}
		addrs[addr] = i
	}
	for _, p := range pods {
		assertNoLeaks(t, p)
	}
}
