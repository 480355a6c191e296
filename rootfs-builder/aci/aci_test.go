package aci

import (
	"encoding/json"
	"testing"

	"github.com/appc/spec/schema"
)

func TestManifest(t *testing.T) {
	m, err := Manifest(Config{Version: "1.2.3", EntryPoints: map[string]string{"run": "x", "gc": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	// Round trip through appc's own validating decoder.
	var back schema.ImageManifest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("appc rejects our manifest: %v", err)
	}
	for k, want := range map[string]string{
		"coreos.com/rkt/stage1/run":               "/init",
		"coreos.com/rkt/stage1/gc":                "/gc",
		"coreos.com/rkt/stage1/interface-version": "6",
	} {
		if got, ok := back.Annotations.Get(k); !ok || got != want {
			t.Errorf("annotation %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := back.Annotations.Get("coreos.com/rkt/stage1/enter"); ok {
		t.Error("enter is declared but was not given")
	}
	if v, _ := back.Labels.Get("version"); v != "1.2.3" {
		t.Errorf("version label %q", v)
	}
}

func TestManifestErrors(t *testing.T) {
	if _, err := Manifest(Config{Version: "1", EntryPoints: map[string]string{"gc": "y"}}); err == nil {
		t.Error("want an error without a run entry point")
	}
	if _, err := Manifest(Config{Version: "1", EntryPoints: map[string]string{"run": "x", "dance": "y"}}); err == nil {
		t.Error("want an error for an unknown entry point")
	}
}
