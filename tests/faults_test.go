package tests

import (
	"reflect"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/supervisor"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// run killed with SIGKILL right after each of its start steps (held there
// by the test-only pause hook): gc then leaves the host as it was before
// the pod, network namespace, links, iptables rules, IP leases, mounts and
// processes included.
func TestKillRunAtEachStartStep(t *testing.T) {
	for _, id := range supervisor.StepIDs() {
		t.Run(id, func(t *testing.T) {
			s := harness.NewStage0(t)
			app := sh("app", "sleep 600")
			app.MountPoints = []types.MountPoint{{Name: acName(t, "scratch"), Path: "/scratch"}}
			p := s.Prepare(t, harness.PodOpts{Volumes: []types.Volume{emptyVolume(t, "scratch")}}, harness.BuildACI(t, app))
			before := snapshot(t, s.Dir)
			run := p.Start(t, harness.RunOpts{Env: []string{settings.PauseAfterEnv + "=" + id}})
			waitPaused(t, run, id)
			killRunThenGC(t, s, p, run)
			assertHostAsBefore(t, before, snapshot(t, s.Dir), "killed after "+id+", then gc")
		})
	}
}

// waitPaused waits for run to stop itself after start step id
// (settings.PauseAfterEnv).
func waitPaused(t *testing.T, run *harness.Running, id string) {
	t.Helper()
	if !waitUntil(readyTimeout, 20*time.Millisecond, func() bool { return harness.ProcessState(run.Pid) == "T" }) {
		t.Fatalf("run never paused after step %s", id)
	}
}

// assertHostAsBefore fails if the host's resources (all but free memory
// and this test process's own descriptors) differ between two snapshots.
func assertHostAsBefore(t testing.TB, before, after hostState, what string) {
	t.Helper()
	before.MemAvail, after.MemAvail = 0, 0
	before.OwnFDs, after.OwnFDs = 0, 0
	if !reflect.DeepEqual(before, after) {
		t.Errorf("%s: the host changed\nbefore %+v\nafter  %+v", what, before, after)
	}
}
