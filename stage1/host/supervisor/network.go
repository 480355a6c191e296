package supervisor

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/cleanup"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/network"
	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// podNetwork is what the network step leaves for the others.
type podNetwork struct {
	// taps are the pod's interfaces, handed to QEMU.
	taps []qemu.Tap
	// mdsURL is the apps' AC_METADATA_URL with --mds-token.
	mdsURL string
	// guest is what the guest applies (contract.PodConfig's Net).
	guest contract.NetConfig
}

// setupNetwork creates the pod's networks (--net) in a network namespace of
// its own and keeps the taps QEMU will get. Releasing is pushed first, so a
// half-done setup is undone too; gc does the same for a run that died.
func (s *session) setupNetwork(undo *cleanup.Stack) error {
	undo.Push("release the network", func() error { return network.Release(s.o.PodDir) })
	start := time.Now()
	res, err := network.Setup(network.Options{
		PodDir:      s.o.PodDir,
		UUID:        s.o.Flags.UUID.String(),
		Manifest:    s.pod.Manifest,
		Nets:        s.o.Flags.Nets,
		LocalConfig: s.o.Flags.LocalConfig,
		Hostname:    s.o.Flags.PodHostname(),
		DNSConfMode: s.o.Flags.DNSConfMode,
		Logf:        s.logf,
	})
	s.timer.markNetwork(time.Since(start))
	if err != nil {
		return err
	}
	undo.Push("close the taps", res.Close)
	s.net.taps = res.Taps
	s.net.guest = res.Guest
	s.logf("network: %s", res.Summary)
	if tok := s.o.Flags.MDSToken; tok != "" {
		if url.PathEscape(tok) != tok {
			return fmt.Errorf("--mds-token %q: not usable as a URL path segment", tok)
		}
		if res.HostIP == nil {
			return fmt.Errorf("--mds-token: the apps reach the metadata service at the host's address on the pod's network, and the pod has none (--net=%s)", strings.Join(s.o.Flags.Nets, ","))
		}
		s.net.mdsURL = metadataURL(res.HostIP, tok)
		s.logf("metadata service: %s", s.net.mdsURL)
	}
	return nil
}

// mdsPort is where rkt's metadata service (`rkt metadata-service`)
// listens for the apps: rkt's common.MetadataServicePort.
const mdsPort = 18112

// metadataURL is the AC_METADATA_URL rkt gives apps: the metadata service
// at the host's address on the pod's forwardable network, with the pod's
// token (rkt run --mds-register) as the path, as the appc spec suggests.
func metadataURL(hostIP net.IP, token string) string {
	return "http://" + net.JoinHostPort(hostIP.String(), strconv.Itoa(mdsPort)) + "/" + token
}
