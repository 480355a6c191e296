package contract

import "path"

// Virtio-serial ports: the guest opens /dev/virtio-ports/<name>; the host
// end of each is a UNIX socket in the pod's VMDir that the run entry point
// listens on and QEMU connects to.
const (
	// EventsPort carries the guest's events (Event) to the host.
	EventsPort = "org.stage1-kvm.events"
	// StdoutPort and StderrPort carry the apps' output, kept apart.
	StdoutPort = "org.stage1-kvm.stdout"
	StderrPort = "org.stage1-kvm.stderr"
	// StdinPort carries run's stdin to an interactive app (typed into its
	// terminal when it has one; the terminal's output goes on StdoutPort).
	StdinPort = "org.stage1-kvm.stdin"
	// AgentPort carries the agent's multiplexed sessions (enter, stop);
	// the run entry point proxies AgentSocket onto it.
	AgentPort = "org.stage1-kvm.agent"
)

// Port is a virtio-serial port and the host socket behind it.
type Port struct {
	Name string
	// Socket is relative to the pod directory.
	Socket string
}

// Ports lists every port a VM may have, in the order QEMU gets them.
var Ports = []Port{
	{Name: EventsPort, Socket: path.Join(VMDir, "events.sock")},
	{Name: StdoutPort, Socket: path.Join(VMDir, "stdout.sock")},
	{Name: StderrPort, Socket: path.Join(VMDir, "stderr.sock")},
	{Name: StdinPort, Socket: path.Join(VMDir, "stdin.sock")},
	{Name: AgentPort, Socket: path.Join(VMDir, "agent.sock")},
}
