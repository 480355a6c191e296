package network

import (
	"encoding/json"
	"net"
	"path/filepath"

	"github.com/stage1-kvm/stage1-kvm/stage1/fsutil"
)

// NetInfo is one entry of <pod>/net-info.json, in the format rkt's
// networking/netinfo package reads (`rkt list` shows netName:ip4=ip, `rkt
// status` the same for each network).
type NetInfo struct {
	NetName    string `json:"netName"`
	ConfPath   string `json:"netConf"`
	PluginPath string `json:"pluginPath"`
	IfName     string `json:"ifName"`
	IP         net.IP `json:"ip"`
	Args       string `json:"args"`
	// Mask is the netmask written as an address, as rkt does.
	Mask net.IP `json:"mask"`
}

// SaveNetInfo writes net-info.json (an empty list for a pod without
// networks).
func SaveNetInfo(podDir string, infos []NetInfo) error {
	if infos == nil {
		infos = []NetInfo{}
	}
	b, err := json.Marshal(infos)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(podDir, NetInfoFile), append(b, '\n'), 0o644)
}
