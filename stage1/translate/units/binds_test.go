package units

import (
	"errors"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/volplan"
)

func TestBindOptions(t *testing.T) {
	opts, err := bindOptions([]volplan.Bind{
		{Source: "/run/stage1/volumes/data", Target: "/mnt/data"},
		{Source: "/pod/volumes/e", Target: "/var/lib/e", ReadOnly: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"BindPaths=/run/stage1/volumes/data:/mnt/data", "BindReadOnlyPaths=/pod/volumes/e:/var/lib/e"}
	if len(opts) != len(want) {
		t.Fatalf("%d options, want %d", len(opts), len(want))
	}
	for i, o := range opts {
		if o.Section != "Service" || o.Name+"="+o.Value != want[i] {
			t.Errorf("option %d: [%s] %s=%s, want %s", i, o.Section, o.Name, o.Value, want[i])
		}
	}
	for _, bad := range []string{"relative", "/a:b", "/a b", "/a/../b", "/a%n", "/a/"} {
		if _, err := bindOptions([]volplan.Bind{{Source: "/s", Target: bad}}); !errors.Is(err, ErrUnrepresentable) {
			t.Errorf("target %q: %v, want ErrUnrepresentable", bad, err)
		}
	}
}
