package contract

// NetConfig is the guest's side of the pod network. The host fills it from
// the network namespace the CNI plugins configured, so the guest copies
// exactly what the plugins decided.
type NetConfig struct {
	Interfaces []NetInterface `json:"interfaces,omitempty"`
	// ResolvConf, when not empty, becomes the guest's /etc/resolv.conf.
	ResolvConf string `json:"resolvConf,omitempty"`
	// Hosts, when not empty, becomes the guest's /etc/hosts.
	Hosts string `json:"hosts,omitempty"`
}

// NetInterface is one guest interface: the virtio-net device with MAC.
type NetInterface struct {
	Name string `json:"name"`
	MAC  string `json:"mac"`
	MTU  int    `json:"mtu,omitempty"`
	// Addresses are in CIDR notation.
	Addresses []string   `json:"addresses,omitempty"`
	Routes    []NetRoute `json:"routes,omitempty"`
}

// NetRoute is a route through an interface. Dst is in CIDR notation;
// without Gateway the destination is on the link.
type NetRoute struct {
	Dst     string `json:"dst"`
	Gateway string `json:"gateway,omitempty"`
	Src     string `json:"src,omitempty"`
	Metric  int    `json:"metric,omitempty"`
}
