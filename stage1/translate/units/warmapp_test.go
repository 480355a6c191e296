package units

import (
	"bytes"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// The warm-up app's unit is what a pod gets for an app of that name,
// command and user in a pod with rkt's default isolation, less its place
// in a pod: nothing of a pod (the I/O forwarder, journald) exists where it
// runs.
func TestWarmApp(t *testing.T) {
	f, err := WarmApp()
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != contract.AppService(contract.WarmApp) {
		t.Errorf("name %q", f.Name)
	}
	a := App{Name: contract.WarmApp, ImageName: "stage1-kvm/warm-up", App: types.App{
		Exec: types.Exec{contract.GuestProgram, "mark"}, User: "0", Group: "0",
	}}
	// (Generate refuses the name: stage1- names are reserved for ours.)
	opts, err := appUnit(a, Pod{Apps: []App{a}})
	if err != nil {
		t.Fatal(err)
	}
	app, err := render(opts)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(string(app), "\n") {
		if !strings.HasPrefix(l, "Requires=") && !strings.HasPrefix(l, "After=") && !strings.HasPrefix(l, "Before=") {
			want = append(want, l)
		}
	}
	if got := string(f.Content); got != strings.Join(want, "\n") {
		t.Errorf("warm-up unit:\n%s\nwant the app's unit without its placement:\n%s", got, strings.Join(want, "\n"))
	}
	for _, s := range []string{"SystemCallFilter=", "CapabilityBoundingSet=", "InaccessiblePaths=", "RootDirectory=" + contract.AppRootfs(contract.WarmApp)} {
		if !bytes.Contains(f.Content, []byte(s)) {
			t.Errorf("warm-up unit lacks %s", s)
		}
	}
	for _, s := range []string{contract.IOService, contract.JournalService} {
		if bytes.Contains(f.Content, []byte(s)) {
			t.Errorf("warm-up unit names %s, which no template has", s)
		}
	}
}
