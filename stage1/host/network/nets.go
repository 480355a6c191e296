// Package network sets up and releases a pod's networks on the host, the
// way rkt's stage1 does for containers, with one difference: what the CNI
// plugins configure in the pod's network namespace is handed on to a VM.
//
// For each network the stage1 runs the plugins unchanged (through libcni)
// in a network namespace it creates and names after the pod
// (/var/run/netns/stage1-<uuid>), then adds a tap device beside the
// interface the plugin made and joins the two with tc mirred redirects, so
// that every frame the interface would receive goes to the guest and every
// frame the guest sends leaves through the interface. QEMU gets the tap as
// an inherited descriptor; the guest gets the interface's MAC, addresses and
// routes (contract.NetConfig). Everything needed to undo it is kept in the pod
// directory (<pod>/net/), so gc can release a pod whose run died at any
// point.
package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Names of rkt's built-in networks and special --net values.
const (
	DefaultNet           = "default"
	DefaultRestrictedNet = "default-restricted"
	NoneNet              = "none"
	HostNet              = "host"
	AllNet               = "all"
)

// ErrNetworksNotFound means --net named networks that no configuration
// defines.
var ErrNetworksNotFound = errors.New("networks not found")

// Built-in network configurations, as rkt ships them (in its stage1 at
// etc/rkt/net.d/99-default*.conf). A file of the same name in the user's
// net.d overrides them.
var (
	defaultConf = []byte(`{
	"cniVersion": "1.0.0",
	"name": "default",
	"type": "ptp",
	"ipMasq": true,
	"ipam": {
		"type": "host-local",
		"subnet": "172.16.28.0/24",
		"routes": [{"dst": "0.0.0.0/0"}]
	}
}
`)
	defaultRestrictedConf = []byte(`{
	"cniVersion": "1.0.0",
	"name": "default-restricted",
	"type": "ptp",
	"ipMasq": false,
	"ipam": {
		"type": "host-local",
		"subnet": "172.31.0.0/16"
	}
}
`)
)

// Request is one element of --net: a network name and the CNI_ARGS given
// for it (--net=name:K=V;K2=V2).
type Request struct {
	Name string
	Args string
}

// ParseNetList parses the --net elements (already split on commas, as the
// run flags are).
func ParseNetList(elems []string) ([]Request, error) {
	var out []Request
	seen := map[string]bool{}
	for _, e := range elems {
		name, args, _ := strings.Cut(e, ":")
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, fmt.Errorf("--net element %q has no network name", e)
		}
		if seen[name] {
			return nil, fmt.Errorf("network %q given twice in --net", name)
		}
		seen[name] = true
		out = append(out, Request{Name: name, Args: args})
	}
	for _, r := range out {
		switch r.Name {
		case NoneNet, HostNet:
			if len(out) > 1 {
				return nil, fmt.Errorf("--net=%s cannot be combined with other networks", r.Name)
			}
		}
	}
	return out, nil
}

// IsNone reports whether the request list asks for no networking at all.
func IsNone(reqs []Request) bool {
	return len(reqs) == 1 && reqs[0].Name == NoneNet
}

// Net is a network to set up: its configuration and how it is attached.
type Net struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// File is the configuration's file name (rkt copies it into the pod
	// under that name).
	File string `json:"file"`
	// Conf is the configuration as read.
	Conf json.RawMessage `json:"conf"`
	// Args is the CNI_ARGS given on the command line.
	Args   string `json:"args,omitempty"`
	IPMasq bool   `json:"ipMasq,omitempty"`
}

// confHead is what rkt reads from a network configuration.
type confHead struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	IPMasq bool   `json:"ipMasq"`
}

func parseNet(file string, b []byte) (*Net, error) {
	var h confHead
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("error loading %s: %w", file, err)
	}
	if h.Name == "" || h.Type == "" {
		return nil, fmt.Errorf("error loading %s: a network needs a name and a type", file)
	}
	return &Net{Name: h.Name, Type: h.Type, File: filepath.Base(file), Conf: b, IPMasq: h.IPMasq}, nil
}

// LoadNets resolves the requested networks as rkt does: the user's
// <localConfig>/net.d/*.conf in lexical order (the first file naming a
// network wins; "all" takes every one), then the built-in default network
// if neither default nor default-restricted is defined by then: default
// when it was asked for (or "all"), default-restricted otherwise (rkt
// always gives a pod on named networks the restricted one, the way to the
// metadata service). Every requested name must be found.
func LoadNets(localConfig string, reqs []Request, logf func(string, ...any)) ([]Net, error) {
	if IsNone(reqs) || len(reqs) == 0 {
		return nil, nil
	}
	want := map[string]string{}
	all := false
	for _, r := range reqs {
		if r.Name == AllNet {
			all = true
			continue
		}
		want[r.Name] = r.Args
	}
	wanted := func(name string) bool {
		_, ok := want[name]
		return ok || all
	}
	nets, err := userNets(localConfig, wanted, logf)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, n := range nets {
		have[n.Name] = true
	}
	if !have[DefaultNet] && !have[DefaultRestrictedNet] {
		_, wantDefault := want[DefaultNet]
		n, err := builtinNet(wantDefault || all)
		if err != nil {
			return nil, err
		}
		have[n.Name] = true
		nets = append(nets, *n)
	}
	var missing []string
	for name := range want {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: %s", ErrNetworksNotFound, strings.Join(missing, ", "))
	}
	for i := range nets {
		nets[i].Args = want[nets[i].Name]
	}
	return nets, nil
}

// userNets reads the networks that wanted accepts from the user's
// <localConfig>/net.d/*.conf, in lexical order: the first file naming a
// network wins.
func userNets(localConfig string, wanted func(string) bool, logf func(string, ...any)) ([]Net, error) {
	if localConfig == "" {
		return nil, nil
	}
	dir := filepath.Join(localConfig, "net.d")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".conf") {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	var nets []Net
	have := map[string]bool{}
	for _, f := range files {
		p := filepath.Join(dir, f)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		n, err := parseNet(p, b)
		if err != nil {
			return nil, err
		}
		if !wanted(n.Name) {
			continue
		}
		if have[n.Name] {
			logf("%q network already defined, ignoring %s", n.Name, f)
			continue
		}
		if n.Name == DefaultNet || n.Name == DefaultRestrictedNet {
			logf("overriding %q network with %s", n.Name, f)
		}
		have[n.Name] = true
		nets = append(nets, *n)
	}
	return nets, nil
}

// builtinNet is rkt's built-in default network (unrestricted), else its
// default-restricted one.
func builtinNet(unrestricted bool) (*Net, error) {
	if unrestricted {
		return parseNet("99-default.conf", defaultConf)
	}
	return parseNet("99-default-restricted.conf", defaultRestrictedConf)
}

// forwardable is the index of the network that forwarded ports lead to:
// the first that masquerades (the default network, usually), else the
// last one.
func forwardable(nets []Net) int {
	for i, n := range nets {
		if n.IPMasq {
			return i
		}
	}
	return len(nets) - 1
}
