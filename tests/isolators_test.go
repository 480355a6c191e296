package tests

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// iso is an isolator from its name and JSON value.
func iso(t *testing.T, name, value string) types.Isolator {
	t.Helper()
	var i types.Isolator
	if err := json.Unmarshal([]byte(`{"name":"`+name+`","value":`+value+`}`), &i); err != nil {
		t.Fatalf("isolator %s %s: %v", name, value, err)
	}
	return i
}

// capBits are the capability numbers the tests name.
var capBits = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4,
	"CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18,
	"CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}

var defaultCaps = []string{"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
	"CAP_KILL", "CAP_MKNOD", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID",
	"CAP_SETPCAP", "CAP_SETFCAP", "CAP_SYS_CHROOT"}

// capMask is caps as /proc/self/status shows a capability set.
func capMask(caps ...string) string {
	var m uint64
	for _, c := range caps {
		m |= 1 << capBits[c]
	}
	return fmt.Sprintf("%016x", m)
}

// probe is a script reporting, as "app:key=value" lines, what the
// isolators change; extra is appended to it.
const probe = report + `for k in CapBnd CapAmb Seccomp NoNewPrivs; do p $k "$(grep "^$k:" /proc/self/status | cut -f2)"; done
p oom "$(cat /proc/self/oom_score_adj)"
cg=$(cut -d: -f3 /proc/self/cgroup); p weight "$(cat /sys/fs/cgroup$cg/cpu.weight)"
p keepalive "$(cat /proc/sys/net/ipv4/tcp_keepalive_time)"
p shmmni "$(cat /proc/sys/kernel/shmmni)"
[ "$(ls /sys/module 2>/dev/null | wc -l)" -gt 0 ] && p module visible || p module hidden
sh -c 'echo 0 > /proc/sys/vm/panic_on_oom' 2>/dev/null && p panic_on_oom writable || p panic_on_oom readonly
sh -c 'echo change > /sys/class/mem/null/uevent' 2>/dev/null && p sys writable || p sys readonly
`

// One pod, three apps: rkt's defaults, an unprivileged app with every
// isolator, and a root app with remove-sets. The sysctls one app sets are
// the whole pod's.
func TestIsolatorsInsideApps(t *testing.T) {
	def := sh("def", probe+`umount /proc 2>/dev/null; p umount $?`)

	usr := sh("usr", probe+`p umount "$(umount /proc 2>&1)"`)
	usr.User, usr.Group = "1000", "1000"
	usr.Isolators = types.Isolators{
		iso(t, "os/linux/capabilities-retain-set", `{"set":["CAP_NET_BIND_SERVICE","CAP_KILL"]}`),
		iso(t, "os/linux/no-new-privileges", `true`),
		iso(t, "os/linux/oom-score-adj", `500`),
		iso(t, "os/linux/cpu-shares", `2048`),
		iso(t, "os/linux/seccomp-retain-set", `{"set":["@rkt/default-whitelist"],"errno":"ENOSYS"}`),
	}

	rm := sh("rm", probe+`p mkdir "$(mkdir /tmp/x 2>&1)"; p umount "$(umount /proc 2>&1)"`)
	rm.Isolators = types.Isolators{
		iso(t, "os/linux/capabilities-remove-set", `{"set":["CAP_CHOWN","CAP_SYS_ADMIN"]}`),
		iso(t, "os/linux/seccomp-remove-set", `{"set":["mkdir","mkdirat"],"errno":"EXFULL"}`),
		iso(t, "os/unix/sysctl", `{"net.ipv4.tcp_keepalive_time":"321","kernel.shmmni":"1234"}`),
	}

	_, r := runPod(t, harness.RunOpts{Net: "none"}, def, usr, rm)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	got := results(r.Stdout)
	var removed []string
	for _, c := range defaultCaps {
		if c != "CAP_CHOWN" {
			removed = append(removed, c)
		}
	}
	want := map[string]string{
		// rkt's defaults: the appc default bounding set, a syscall
		// allow-list killing on anything else (SIGSYS: 128+31), kernel
		// paths protected.
		"def:CapBnd":       capMask(defaultCaps...),
		"def:CapAmb":       capMask(),
		"def:Seccomp":      "2",
		"def:NoNewPrivs":   "0",
		"def:oom":          "0",
		"def:weight":       "100",
		"def:module":       "hidden",
		"def:panic_on_oom": "readonly",
		"def:sys":          "readonly",
		"def:umount":       "159",
		// Exactly the retained capabilities, also ambient for a
		// non-root user; a denied call fails with the isolator's errno.
		"usr:CapBnd":     capMask("CAP_NET_BIND_SERVICE", "CAP_KILL"),
		"usr:CapAmb":     capMask("CAP_NET_BIND_SERVICE", "CAP_KILL"),
		"usr:Seccomp":    "2",
		"usr:NoNewPrivs": "1",
		"usr:oom":        "500",
		"usr:weight":     "200",
		"usr:umount":     "umount: can't unmount /proc: Function not implemented",
		"rm:CapBnd":      capMask(removed...),
		"rm:Seccomp":     "2",
		"rm:mkdir":       "mkdir: can't create directory '/tmp/x': Exchange full",
		// Not filtered, but CAP_SYS_ADMIN was never there.
		"rm:umount": "umount: can't unmount /proc: Operation not permitted",
	}
	for _, app := range []string{"def", "usr", "rm"} {
		want[app+":keepalive"] = "321"
		want[app+":shmmni"] = "1234"
	}
	checkResults(t, got, want)
	if t.Failed() {
		t.Logf("stdout:\n%s", r.Stdout)
	}
}

// rkt's --insecure-options: no capability bounding set, no syscall filter,
// no protected paths, whatever the isolators say.
func TestIsolatorsDisabledByFlags(t *testing.T) {
	app := sh("open", probe+`p lastcap "$(cat /proc/sys/kernel/cap_last_cap)"`)
	app.Isolators = types.Isolators{
		iso(t, "os/linux/capabilities-retain-set", `{"set":["CAP_KILL"]}`),
		iso(t, "os/linux/seccomp-remove-set", `{"set":["mkdir"]}`),
	}
	_, r := runPod(t, harness.RunOpts{Net: "none", DisableCapabilities: true, DisableSeccomp: true, DisablePaths: true}, app)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	got := results(r.Stdout)
	last, err := strconv.Atoi(got["open:lastcap"])
	if err != nil {
		t.Fatalf("cap_last_cap %q: %v\n%s", got["open:lastcap"], err, r.Stdout)
	}
	checkResults(t, got, map[string]string{
		"open:CapBnd":       fmt.Sprintf("%016x", uint64(1)<<(last+1)-1),
		"open:Seccomp":      "0",
		"open:module":       "visible",
		"open:panic_on_oom": "writable",
		"open:sys":          "writable",
	})
	if t.Failed() {
		t.Logf("stdout:\n%s", r.Stdout)
	}
}

// Isolators that cannot be honoured stop the pod before the VM starts, with
// an error naming them.
func TestIsolatorsRefused(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"os/unix/sysctl", `{"kernel.panic":"10"}`, "kernel.panic"},
		{"resource/block-bandwidth", `{"default":true,"limit":"2M"}`, "resource/block-bandwidth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := sh("app", "true")
			app.Isolators = types.Isolators{iso(t, tc.name, tc.value)}
			_, r := runPod(t, harness.RunOpts{Net: "none"}, app)
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("exit %d, stderr %q: want a failure naming %s", r.ExitCode, r.Stderr, tc.want)
			}
		})
	}
}

func TestReadOnlyRootFS(t *testing.T) {
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{ReadOnlyRootFS: true},
		harness.BuildACI(t, sh("app", "touch /x 2>/dev/null && echo writable || echo read-only")))
	r := p.Run(t, harness.RunOpts{Net: "none"})
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	if !strings.HasPrefix(r.Stdout, "read-only\n") {
		t.Errorf("readOnlyRootFS app could write its root: %q", r.Stdout)
	}
}
