package supervisor

import (
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/cleanup"
	"github.com/stage1-kvm/stage1-kvm/stage1/network"
)

// setupNetwork creates the pod's networks (--net) in a network namespace of
// its own and keeps the taps QEMU will get. Releasing is pushed first, so a
// half-done setup is undone too; gc does the same for a run that died.
func (s *session) setupNetwork(undo *cleanup.Stack) error {
	undo.Push("release the network", func() error { return network.Release(s.o.PodDir) })
	uuid := s.o.Flags.UUID.String()
	hostname := s.o.Flags.Hostname
	if hostname == "" {
		hostname = "rkt-" + uuid
	}
	start := time.Now()
	res, err := network.Setup(network.Options{
		PodDir:      s.o.PodDir,
		UUID:        uuid,
		Manifest:    s.pod.Manifest,
		Nets:        s.o.Flags.Nets,
		LocalConfig: s.o.Flags.LocalConfig,
		Hostname:    hostname,
		DNSConfMode: s.o.Flags.DNSConfMode,
		Logf:        s.logf,
	})
	s.timer.markNetwork(time.Since(start))
	if err != nil {
		return err
	}
	undo.Push("close the taps", res.Close)
	s.taps = res.Taps
	s.logf("network: %s", res.Summary)
	return nil
}
