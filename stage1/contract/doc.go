// Package contract is everything the host side and the guest side of the
// stage1 must agree on, and nothing else: where things are inside the guest,
// the names of the virtio-serial ports, sockets and shares that join the two,
// the guest kernel command-line keys, the files of the stage1 image and of
// the pod directory, and the formats of what crosses the boundary (events,
// app environments, the volume list, the network configuration).
//
// Host-side packages (stage1/host/...) and guest-side packages
// (stage1/guest/...) never import each other; both import this package
// (and the agent's wire protocol, stage1/agentproto). A name used by both
// sides is defined here once. Everything read from the guest is untrusted:
// the parsers here are strict and bounded.
package contract
