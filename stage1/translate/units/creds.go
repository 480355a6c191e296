package units

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Credentials are the numeric identity an app runs with. The guest's
// systemd must be given numbers: a name would be looked up in the guest's
// user database, while appc says names mean what the app's own /etc/passwd
// and /etc/group say.
type Credentials struct {
	UID               uint32
	GID               uint32
	SupplementaryGIDs []uint32
}

// ResolveCredentials resolves the app's user, group and supplementary
// groups, as appc defines them. user and group may each be
//   - a decimal number, used as is;
//   - a name, looked up in the app rootfs's /etc/passwd or /etc/group;
//   - an absolute path, meaning the owner (uid or gid) of that file in the
//     app rootfs.
//
// All reads stay inside a.RootfsHost, whatever symlinks it contains.
func ResolveCredentials(a App) (Credentials, error) {
	root := openRootfs(a.RootfsHost)
	defer root.Close()
	return resolveCredentials(a, root)
}

func resolveCredentials(a App, root *rootfs) (Credentials, error) {
	var c Credentials
	uid, err := resolveID(root, a.App.User, "/etc/passwd", ErrUnknownUser, func(st statIDs) uint32 { return st.uid })
	if err != nil {
		return c, fmt.Errorf("user %q: %w", a.App.User, err)
	}
	gid, err := resolveID(root, a.App.Group, "/etc/group", ErrUnknownGroup, func(st statIDs) uint32 { return st.gid })
	if err != nil {
		return c, fmt.Errorf("group %q: %w", a.App.Group, err)
	}
	c.UID, c.GID = uid, gid
	for _, g := range a.App.SupplementaryGIDs {
		if g < 0 || int64(g) > 0xFFFFFFFF || !validID(uint32(g)) {
			return c, fmt.Errorf("supplementary group %d: not a valid gid: %w", g, ErrUnrepresentable)
		}
		c.SupplementaryGIDs = append(c.SupplementaryGIDs, uint32(g))
	}
	return c, nil
}

type statIDs struct{ uid, gid uint32 }

// resolveID turns one user or group specification into a number. db is the
// database searched for names; owner picks the uid or gid of a file.
func resolveID(root *rootfs, spec, db string, unknown error, owner func(statIDs) uint32) (uint32, error) {
	var id uint32
	switch {
	case spec == "":
		return 0, fmt.Errorf("empty: %w", unknown)
	case isDecimal(spec):
		n, err := strconv.ParseUint(spec, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("out of range: %w", ErrUnrepresentable)
		}
		id = uint32(n)
	case strings.HasPrefix(spec, "/"):
		st, err := root.stat(spec)
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("no such file in the app's rootfs: %w", unknown)
		}
		if err != nil {
			return 0, err
		}
		id = owner(statIDs{uid: st.Uid, gid: st.Gid})
	default:
		data, err := root.readFile(db)
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("the app's rootfs has no %s: %w", db, unknown)
		}
		if err != nil {
			return 0, err
		}
		n, ok, err := lookupDB(data, spec)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", db, err)
		}
		if !ok {
			return 0, fmt.Errorf("not in the app's %s: %w", db, unknown)
		}
		id = n
	}
	if !validID(id) {
		return 0, fmt.Errorf("id %d is reserved and systemd refuses it: %w", id, ErrUnrepresentable)
	}
	return id, nil
}

// validID rejects the two ids that mean "no id" to the kernel and systemd:
// (uint32)-1 and its 16-bit form.
func validID(id uint32) bool { return id != 0xFFFFFFFF && id != 0xFFFF }

func isDecimal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// lookupDB finds name in passwd or group file content: the first line whose
// first field is name gives the number in its third field (uid in passwd,
// gid in group). Comments, blank lines and NIS "+"/"-" entries are skipped,
// as glibc's files backend does.
func lookupDB(data []byte, name string) (uint32, bool, error) {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fields := bytes.SplitN(line, []byte(":"), 4)
		if len(fields) < 3 || string(fields[0]) != name {
			continue
		}
		n, err := strconv.ParseUint(string(fields[2]), 10, 32)
		if err != nil {
			return 0, false, fmt.Errorf("entry %q has a bad id %q", name, fields[2])
		}
		return uint32(n), true, nil
	}
	return 0, false, nil
}
