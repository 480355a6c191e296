package agentproto

import (
	"io"

	"github.com/hashicorp/yamux"
)

// SessionConfig is the yamux configuration of both ends of the agent
// session (the host's client, the guest's server): no logging, and no
// keep-alive pings. Under emulation either side may be descheduled for
// long stretches, so a missed ping proves nothing; the VM's end is the
// session's end.
func SessionConfig() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.EnableKeepAlive = false
	return cfg
}
