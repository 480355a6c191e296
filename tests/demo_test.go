package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// TestDemo is `make demo`: a real pod, run the way `rkt run` runs it, whose
// app shows that it runs on its own kernel, in a VM.
func TestDemo(t *testing.T) {
	script := `echo "app:   kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPU, $(grep MemTotal /proc/meminfo | tr -s ' ')"; ` +
		`echo "app:   hostname $(hostname), running as uid $(id -u)"; ` +
		`echo "app:   cpu:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), cpu flag: $(grep -o -m1 -w hypervisor /proc/cpuinfo)"`
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("demo", script)))
	host, err := exec.Command("uname", "-r").Output()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "\nhost:  kernel %s", host)
	fmt.Fprintf(os.Stdout, "host:  rkt run --stage1-path=%s demo.aci   (pod %s)\n", s.Stage1ACI, p.UUID)
	r := p.Run(t, harness.RunOpts{Net: "none", Stdout: os.Stdout})
	if r.ExitCode != 0 {
		t.Fatalf("pod exited %d: %s", r.ExitCode, r.Stderr)
	}
	st, _ := p.AppStatus("demo")
	fmt.Fprintf(os.Stdout, "host:  pod exited %d, rkt status: app-demo=%d, in %v\n\n", r.ExitCode, st, r.Duration.Round(1e6))
	if strings.TrimSpace(string(host)) == "6.1.192" {
		t.Skip("host runs the same kernel version as the guest: the demo proves nothing here")
	}
}
