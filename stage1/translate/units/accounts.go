package units

import (
	"fmt"
	"slices"
	"strings"
)

// Base entries of the guest's user database (the guest image's own
// /etc/passwd and /etc/group, repeated here because the generated files
// replace them).
const (
	basePasswd = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	baseGroup  = "root:x:0:\nsystemd-journal:x:101:\nnogroup:x:65534:\n"
)

// Accounts returns the guest's /etc/passwd and /etc/group for the pod: the
// image's base entries plus one entry for every uid and gid an app runs
// with. systemd 252 refuses a numeric User=/Group=/SupplementaryGroups= that
// the guest's user database does not know (status 217/USER), and the ids
// come from each app's own database, which the guest does not read.
func Accounts(p Pod) (passwd, group []byte, err error) {
	uids := map[uint32]uint32{} // uid -> its primary gid
	gids := map[uint32]bool{}
	for _, a := range p.Apps {
		c, err := ResolveCredentials(a)
		if err != nil {
			return nil, nil, fmt.Errorf("app %s: %w", a.Name, err)
		}
		if _, ok := uids[c.UID]; !ok {
			uids[c.UID] = c.GID
		}
		gids[c.GID] = true
		for _, g := range c.SupplementaryGIDs {
			gids[g] = true
		}
	}
	var pw, gr strings.Builder
	pw.WriteString(basePasswd)
	gr.WriteString(baseGroup)
	for _, uid := range sortedKeys(uids) {
		if uid == 0 || uid == 65534 {
			continue
		}
		fmt.Fprintf(&pw, "u%d:x:%d:%d::/:/usr/sbin/nologin\n", uid, uid, uids[uid])
	}
	for _, gid := range sortedKeys(gids) {
		if gid == 0 || gid == 101 || gid == 65534 {
			continue
		}
		fmt.Fprintf(&gr, "g%d:x:%d:\n", gid, gid)
	}
	return []byte(pw.String()), []byte(gr.String()), nil
}

func sortedKeys[V any](m map[uint32]V) []uint32 {
	keys := make([]uint32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
