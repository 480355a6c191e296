package guest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

func TestLinkPorts(t *testing.T) {
	sys := t.TempDir()
	for port, name := range map[string]string{"vport0p1": "org.example.a\n", "vport0p2": ""} {
		if err := os.MkdirAll(filepath.Join(sys, port), 0o755); err != nil {
			t.Fatal(err)
		}
		if name != "" {
			if err := os.WriteFile(filepath.Join(sys, port, "name"), []byte(name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	dst := filepath.Join(t.TempDir(), "ports")
	if err := LinkPorts(sys, dst); err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(filepath.Join(dst, "org.example.a"))
	if err != nil || target != "/dev/vport0p1" {
		t.Fatalf("link = %q, %v", target, err)
	}
	entries, _ := os.ReadDir(dst)
	if len(entries) != 1 {
		t.Fatalf("want one link (unnamed ports skipped), got %d", len(entries))
	}
}

func TestExitStatus(t *testing.T) {
	for _, tt := range []struct {
		code, status int32
		want         int
		err          bool
	}{
		{mainExited, 0, 0, false},
		{mainExited, 42, 42, false},
		{mainExited, 255, 255, false},
		{mainKilled, 9, 9, false},
		{mainKilled, 15, 15, false},
		{mainDumped, 11, 11, false},
		{mainNeverRan, 0, 1, false},
		{mainExited, 256, 0, true},
		{mainExited, -1, 0, true},
		{mainKilled, 0, 0, true},
		{mainKilled, 65, 0, true},
		{7, 1, 0, true},
	} {
		got, err := ExitStatus(tt.code, tt.status)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ExitStatus(%d, %d) = %d, %v; want %d (err %v)", tt.code, tt.status, got, err, tt.want, tt.err)
		}
	}
}

func TestPodEnd(t *testing.T) {
	exited := map[string]bool{"a": true}
	f := func(a string) bool { return exited[a] }
	if got := PodEnd(0, []string{"a", "b"}, f); got != podRuns {
		t.Errorf("b still runs: %v, want the pod to go on", got)
	}
	if got := PodEnd(3, []string{"a", "b"}, f); got != podStops {
		t.Errorf("a failed while b runs: %v, want b stopped", got)
	}
	exited["b"] = true
	if got := PodEnd(0, []string{"a", "b"}, f); got != podEnded {
		t.Errorf("all apps done: %v, want the pod ended", got)
	}
	if got := PodEnd(3, []string{"a", "b"}, f); got != podEnded {
		t.Errorf("the last app failed: %v, want the pod ended (nothing left to stop)", got)
	}
}

// A unit change that says the unit runs, or has not run yet, is settled
// from the change alone: no call to systemd (the bus here has no
// connection, so a call would fail the check).
func TestUnitEndFromChange(t *testing.T) {
	b := &systemdBus{}
	for _, changed := range []map[string]dbus.Variant{
		{"ActiveState": dbus.MakeVariant("active")},
		{"ActiveState": dbus.MakeVariant("activating")},
		{"ActiveState": dbus.MakeVariant("deactivating")},
		{"ActiveState": dbus.MakeVariant("inactive"), "InactiveExitTimestampMonotonic": dbus.MakeVariant(uint64(0))},
	} {
		end, err := b.unitEnd(context.Background(), "app.service", changed)
		if err != nil || end.ended {
			t.Errorf("%v: %+v, %v; want not ended, no error", changed, end, err)
		}
	}
}

// A unit that ran and stopped gives its main process's status; one that
// runs, or never ran, has not ended.
func TestUnitEndOf(t *testing.T) {
	for _, state := range []string{"inactive", "failed"} {
		p := map[string]any{"ActiveState": state, "InactiveExitTimestampMonotonic": uint64(5), "ExecMainCode": int32(mainKilled), "ExecMainStatus": int32(9)}
		end, err := unitEndOf(p)
		if err != nil || end != (unitEnd{ended: true, code: mainKilled, status: 9}) {
			t.Errorf("%v: %+v, %v; want ended, killed by 9", p, end, err)
		}
	}
	for _, p := range []map[string]any{
		{"ActiveState": "deactivating", "InactiveExitTimestampMonotonic": uint64(5)},
		{"ActiveState": "inactive", "InactiveExitTimestampMonotonic": uint64(0)},
		{"ActiveState": "inactive"},
	} {
		if end, err := unitEndOf(p); err != nil || end.ended {
			t.Errorf("%v: %+v, %v; want not ended", p, end, err)
		}
	}
	bad := map[string]any{"ActiveState": "failed", "InactiveExitTimestampMonotonic": uint64(5), "ExecMainCode": "1", "ExecMainStatus": int32(3)}
	if _, err := unitEndOf(bad); err == nil {
		t.Errorf("an ExecMainCode that is not an int32 was taken")
	}
}

func TestParamIn(t *testing.T) {
	cmdline := "console=ttyS0 stage1_virtiofs=pod,vol-1 systemd.unit=stage1-boot.target stage1_virtiofsx=no\n"
	if got := paramIn(cmdline, "stage1_virtiofs"); got != "pod,vol-1" {
		t.Errorf("stage1_virtiofs = %q", got)
	}
	if got := paramIn(cmdline, "stage1_page_reporting_order"); got != "" {
		t.Errorf("absent key = %q", got)
	}
}

// The warm-up configuration is one the host can send and the guest
// accepts.
func TestWarmConfigParses(t *testing.T) {
	wire, err := warmConfig.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := contract.ReadPodConfig(bytes.NewReader(wire)); err != nil {
		t.Fatal(err)
	}
}

func TestKmsgSeqnum(t *testing.T) {
	for rec, want := range map[string]uint64{
		"6,0,0,-;Linux version 6.1\n":                        0,
		"4,339,2694759,-,caller=T1;ZZ mark\n":                339,
		"12,18446744073709551615,1,c;x\n SUBSYSTEM=virtio\n": 18446744073709551615,
	} {
		if got, err := kmsgSeqnum([]byte(rec)); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", rec, got, err, want)
		}
	}
	for _, rec := range []string{"", "6,12,0;no flags", "6,x,0,-;bad", "6,12,0,- no separator"} {
		if _, err := kmsgSeqnum([]byte(rec)); err == nil {
			t.Errorf("%q: taken", rec)
		}
	}
}

// An ended service's status comes with its state: systemd sends the
// Service interface's change just before the Unit interface's, and the
// reader passes the main process's end on with the latter, so the
// reporter asks nothing (the bus here has no connection).
func TestUnitChangeCarriesMainEnd(t *testing.T) {
	path := unitPath("app.service")
	signal := func(intf string, props map[string]dbus.Variant) *dbus.Signal {
		return &dbus.Signal{Path: path, Name: "org.freedesktop.DBus.Properties.PropertiesChanged", Body: []any{intf, props, []string{}}}
	}
	var r unitChangeReader
	if _, _, ok := r.read(signal(serviceInterface, map[string]dbus.Variant{
		"ExecMainCode": dbus.MakeVariant(int32(mainExited)), "ExecMainStatus": dbus.MakeVariant(int32(3)), "MainPID": dbus.MakeVariant(uint32(0)),
	})); ok {
		t.Fatal("a Service interface change alone was passed on")
	}
	got, props, ok := r.read(signal(unitInterface, map[string]dbus.Variant{
		"ActiveState": dbus.MakeVariant("failed"), "InactiveExitTimestampMonotonic": dbus.MakeVariant(uint64(7)),
	}))
	if !ok || got != path {
		t.Fatalf("the Unit interface change was not passed on: %v %v", got, ok)
	}
	end, err := (&systemdBus{}).unitEnd(context.Background(), "app.service", props)
	if err != nil || end != (unitEnd{ended: true, code: mainExited, status: 3}) {
		t.Errorf("unitEnd = %+v, %v; want ended with status 3, from the changes alone", end, err)
	}
	// The next change of the unit has no service change before it: the
	// last one's status is not carried over.
	_, props, _ = r.read(signal(unitInterface, map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("inactive")}))
	if _, ok := props["ExecMainStatus"]; ok {
		t.Errorf("a later unit change carried an earlier service change's status")
	}
}
