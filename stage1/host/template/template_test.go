package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func fill(ram, state string) func(string) error {
	return func(dir string) error {
		if err := os.WriteFile(filepath.Join(dir, RAMFile), []byte(ram), 0o600); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, StateFile), []byte(state), 0o600)
	}
}

// fillWithTranslations also leaves an image of translated code.
func fillWithTranslations(ram, state, tc string) func(string) error {
	return func(dir string) error {
		if err := fill(ram, state)(dir); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, TranslationsFile), []byte(tc), 0o600)
	}
}

func TestKey(t *testing.T) {
	a, b := Key("argv", "kernel 1 2"), Key("argv", "kernel 1 3")
	if a == b || a != Key("argv", "kernel 1 2") || !IsKey(a) {
		t.Errorf("keys %q %q: want stable, distinct, well-formed", a, b)
	}
	// Inputs are length-prefixed: moving a boundary changes the key.
	if Key("ab", "c") == Key("a", "bc") {
		t.Error("Key(ab, c) == Key(a, bc)")
	}
}

func TestMakeLookupDrop(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "templates")}
	key := Key("shape")
	if _, err := s.Lookup(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: %v, want ErrNotFound", err)
	}
	made, err := s.Make(key, fill("ram", "state"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Lookup(key)
	if err != nil || got.Meta != made.Meta || got.Meta.StateBytes != 5 || got.Meta.RAMBytes != 3 {
		t.Fatalf("Lookup = %+v, %v; made %+v", got, err, made)
	}
	// Only the template's files are left, nothing of the making.
	ents, _ := os.ReadDir(got.Dir)
	if len(ents) != 3 {
		t.Errorf("template directory holds %d files, want ram, state and the record", len(ents))
	}
	// A second Make finds it and makes nothing.
	if _, err := s.Make(key, func(string) error { t.Error("made again"); return nil }); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Key != key || list[0].Err != nil {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := s.Drop(key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Drop: %v", err)
	}
	if err := s.Drop(key); err != nil {
		t.Errorf("dropping a missing template: %v", err)
	}
	if err := s.Drop("../etc"); err == nil {
		t.Error("Drop took a path for a key")
	}
}

func TestCorruptTemplate(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	key := Key("shape")
	corruptions := map[string]func(Template) error{
		"state changed": func(tp Template) error { return os.WriteFile(tp.State(), []byte("STATE"), 0o600) },
		"state missing": func(tp Template) error { return os.Remove(tp.State()) },
		"RAM truncated": func(tp Template) error { return os.Truncate(tp.RAM(), 1) },
		"RAM rewritten, its time kept": func(tp Template) error {
			st, err := os.Stat(tp.RAM())
			if err != nil {
				return err
			}
			if err := os.WriteFile(tp.RAM(), []byte("RAM"), 0o600); err != nil {
				return err
			}
			return os.Chtimes(tp.RAM(), st.ModTime(), st.ModTime())
		},
		"record garbled": func(tp Template) error { return os.WriteFile(filepath.Join(tp.Dir, MetaFile), []byte("{"), 0o600) },
		// QEMU runs what the image holds as code.
		"translations changed": func(tp Template) error {
			return os.WriteFile(tp.Translations(), []byte("TRANSLATIONS"), 0o600)
		},
		"translations missing": func(tp Template) error { return os.Remove(tp.Translations()) },
	}
	for name, corrupt := range corruptions {
		tp, err := s.Make(key, fillWithTranslations("ram", "state", "translations"))
		if err != nil {
			t.Fatal(err)
		}
		if err := corrupt(tp); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lookup(key); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Lookup = %v, want ErrCorrupt", name, err)
		}
		// Make replaces it.
		tp, err = s.Make(key, fill("ram2", "state2"))
		if err != nil || tp.Meta.StateBytes != 6 {
			t.Errorf("%s: remade %+v, %v", name, tp.Meta, err)
		}
		if err := s.Drop(key); err != nil {
			t.Fatal(err)
		}
	}
}

// The image of translated code is optional: a template without one has
// no Translations to load; one with it records and checks it.
func TestTranslationsFile(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	without, with := Key("without"), Key("with")
	if _, err := s.Make(without, fill("ram", "state")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Make(with, fillWithTranslations("ram", "state", "code")); err != nil {
		t.Fatal(err)
	}
	a, err := s.Lookup(without)
	if err != nil || a.Translations() != "" || a.Meta.TranslationsBytes != 0 {
		t.Errorf("template without translations: %+v, %v", a.Meta, err)
	}
	b, err := s.Lookup(with)
	if err != nil || b.Translations() != filepath.Join(b.Dir, TranslationsFile) || b.Meta.TranslationsBytes != 4 || b.Meta.TranslationsSHA256 == "" {
		t.Errorf("template with translations: %+v, %v", b.Meta, err)
	}
}

// LookupForStart leaves the files' contents to CheckState, CheckRAM and
// CheckTranslations: a file changed in place, at its size (and, for the
// RAM file, its time), is found by its check, and by Lookup.
func TestLookupForStart(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	key := Key("shape")
	for name, c := range map[string]struct {
		file  func(Template) string
		check func(Template) error
	}{
		"state":        {Template.State, Template.CheckState},
		"RAM":          {Template.RAM, Template.CheckRAM},
		"translations": {Template.Translations, Template.CheckTranslations},
	} {
		tp, err := s.Make(key, fillWithTranslations("ram", "state", "code"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.check(tp); err != nil {
			t.Fatalf("%s: a whole file: %v", name, err)
		}
		st, err := os.Stat(c.file(tp))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.file(tp), bytes.ToUpper(must(os.ReadFile(c.file(tp)))), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(c.file(tp), st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
		got, err := s.LookupForStart(key)
		if err != nil {
			t.Fatalf("%s: LookupForStart: %v", name, err)
		}
		if err := c.check(got); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: check = %v, want ErrCorrupt", name, err)
		}
		if _, err := s.Lookup(key); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Lookup = %v, want ErrCorrupt", name, err)
		}
		if err := s.Drop(key); err != nil {
			t.Fatal(err)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// While one process makes a template, another does not wait for it or
// touch it: it is told ErrBusy (and boots cold).
func TestMakeBusy(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	key := Key("shape")
	inFill, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := s.Make(key, func(dir string) error {
			close(inFill)
			<-release
			return fill("ram", "state")(dir)
		})
		done <- err
	}()
	<-inFill
	if _, err := s.Make(key, fill("x", "y")); !errors.Is(err, ErrBusy) {
		t.Errorf("second Make = %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if tp, err := s.Lookup(key); err != nil || tp.Meta.StateBytes != 5 {
		t.Errorf("the first maker's template: %+v, %v", tp.Meta, err)
	}
}

// A failed making leaves nothing behind.
func TestMakeFails(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	key := Key("shape")
	boom := errors.New("boom")
	if _, err := s.Make(key, func(string) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Make = %v", err)
	}
	if _, err := s.Make(key, func(dir string) error { return os.WriteFile(filepath.Join(dir, RAMFile), nil, 0o600) }); err == nil {
		t.Fatal("a template without state was made")
	}
	ents, _ := os.ReadDir(s.Dir)
	for _, e := range ents {
		if e.Name() != "."+key+".lock" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// What a maker killed midway left is cleared by the next maker.
func TestMakeClearsLeftovers(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	key := Key("shape")
	left := filepath.Join(s.Dir, ".making-"+key+"-123")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Make(key, fill("ram", "state")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("leftover %s: %v", left, err)
	}
}

// A template recorded by an older layout (Version) is stale: not used,
// made again.
func TestStaleTemplate(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	key := Key("shape")
	tp, err := s.Make(key, fill("ram", "state"))
	if err != nil {
		t.Fatal(err)
	}
	m := tp.Meta
	m.Version = Version - 1
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(tp.Dir, MetaFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(key); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("stale template: Lookup = %v, want ErrCorrupt", err)
	}
	made := false
	if _, err := s.Make(key, func(dir string) error { made = true; return fill("ram", "state")(dir) }); err != nil || !made {
		t.Fatalf("stale template not made again: %v", err)
	}
}
