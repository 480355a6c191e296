// Package template keeps templates: guests booted to the template point
// (the pre-init waiting for its pod's configuration) and saved, guest RAM
// in one file and QEMU's device state in another, that pods of the same
// shape start from instead of booting (docs/architecture.md, "Templates").
//
// A store is a root-only host directory outside every pod, with one
// directory per template named by its key (a hash of the shape: Key).
// Templates are made on first use under an exclusive lock, in a
// temporary directory renamed into place when complete, so a reader sees a
// whole template or none; they are checked before each use (Lookup).
package template

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Version is the layout of a template directory; Key includes it, so a
// change makes every older template unused (and Prune drops them).
// Version 2: the RAM file's data is checked with CRC-32C, not SHA-256.
const Version = 2

// Files of a template directory.
const (
	RAMFile   = "ram"
	StateFile = "state"
	MetaFile  = "meta.json"
	// TranslationsFile is an image of the template QEMU's translation
	// cache (under TCG only; optional: a clone without it translates
	// everything itself).
	TranslationsFile = "translations"
	// ConsoleFile is the guest console up to the template point (for
	// --debug; not checked).
	ConsoleFile = "console.log"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no template of that key.
	ErrNotFound = errors.New("no template")
	// ErrCorrupt: a template whose files do not match its record.
	ErrCorrupt = errors.New("corrupt template")
	// ErrBusy: another process is making that template now.
	ErrBusy = errors.New("template being made by another pod")
)

// keyRe is what Key returns.
var keyRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Key is the template key of a shape: every input that a saved guest
// depends on, in order (QEMU's command line as it sees it in its jail, the
// identity of the kernel, guest image and QEMU build, ...).
func Key(shape ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "stage1-kvm template v%d\n", Version)
	for _, s := range shape {
		fmt.Fprintf(h, "%d:%s\n", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Meta is a template's record, written last.
type Meta struct {
	Version int    `json:"version"`
	Key     string `json:"key"`
	// RAMBytes is the RAM file's size; StateBytes and StateSHA256 the
	// state file's size and hash.
	RAMBytes    int64  `json:"ramBytes"`
	StateBytes  int64  `json:"stateBytes"`
	StateSHA256 string `json:"stateSHA256"`
	// RAMModNano is the RAM file's modification time once made: a
	// template's files never change after it is made. RAMCRC32C is the
	// checksum of its data (sumData): a clone of a RAM file changed since
	// would run a guest no one booted. A checksum, not a cryptographic
	// hash: it is checked at every clone's start, and only root, who
	// could rewrite this record too, can write the file (docs/security.md).
	RAMModNano int64  `json:"ramModNano"`
	RAMCRC32C  string `json:"ramCRC32C"`
	// TranslationsBytes and TranslationsSHA256 describe TranslationsFile
	// (0 and "": the template has none). QEMU runs what it holds as
	// code, so it is checked like the state.
	TranslationsBytes  int64     `json:"translationsBytes,omitempty"`
	TranslationsSHA256 string    `json:"translationsSHA256,omitempty"`
	Made               time.Time `json:"made"`
	MakeMs             int64     `json:"makeMs"`
}

// Template is one checked template.
type Template struct {
	Dir  string
	Meta Meta
}

// RAM and State are the template's files.
func (t Template) RAM() string   { return filepath.Join(t.Dir, RAMFile) }
func (t Template) State() string { return filepath.Join(t.Dir, StateFile) }

// Translations is the template's image of translated code, "" if it has
// none.
func (t Template) Translations() string {
	if t.Meta.TranslationsBytes == 0 {
		return ""
	}
	return filepath.Join(t.Dir, TranslationsFile)
}

// Store is a directory of templates.
type Store struct{ Dir string }

func (s Store) path(key string) string { return filepath.Join(s.Dir, key) }

// Lookup returns the template of key after checking its record and files:
// ErrNotFound if there is none, ErrCorrupt if it does not check out.
func (s Store) Lookup(key string) (Template, error) {
	t, err := s.LookupForStart(key)
	for _, check := range []func() error{t.CheckState, t.CheckRAM, t.CheckTranslations} {
		if err == nil {
			err = check()
		}
	}
	return t, err
}

// LookupForStart is Lookup without hashing the files: their record, their
// sizes and the RAM file's time are checked; the caller hashes each file
// (CheckState, CheckRAM, CheckTranslations) while QEMU starts, before
// QEMU reads or runs it.
func (s Store) LookupForStart(key string) (Template, error) {
	if !keyRe.MatchString(key) {
		return Template{}, fmt.Errorf("template key %q: not a key", key)
	}
	t := Template{Dir: s.path(key)}
	b, err := os.ReadFile(filepath.Join(t.Dir, MetaFile))
	if errors.Is(err, os.ErrNotExist) {
		return t, fmt.Errorf("%w: %s", ErrNotFound, key)
	} else if err != nil {
		return t, fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
	}
	if err := json.Unmarshal(b, &t.Meta); err != nil {
		return t, fmt.Errorf("%w: %s: record: %w", ErrCorrupt, key, err)
	}
	if t.Meta.Version != Version || t.Meta.Key != key {
		return t, fmt.Errorf("%w: %s: record of version %d, key %q", ErrCorrupt, key, t.Meta.Version, t.Meta.Key)
	}
	ram, err := os.Stat(t.RAM())
	if err != nil {
		return t, fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
	}
	if ram.Size() != t.Meta.RAMBytes || ram.ModTime().UnixNano() != t.Meta.RAMModNano {
		return t, fmt.Errorf("%w: %s: RAM file changed since it was made", ErrCorrupt, key)
	}
	for path, size := range map[string]int64{t.State(): t.Meta.StateBytes, t.Translations(): t.Meta.TranslationsBytes} {
		if path == "" {
			continue
		}
		if st, err := os.Stat(path); err != nil || st.Size() != size {
			return t, fmt.Errorf("%w: %s: %s changed since it was made (%v)", ErrCorrupt, key, filepath.Base(path), err)
		}
	}
	return t, nil
}

// CheckState checks the template's device state against its record:
// ErrCorrupt if it changed.
func (t Template) CheckState() error {
	if err := checkFile(t.State(), t.Meta.StateBytes, t.Meta.StateSHA256); err != nil {
		return fmt.Errorf("%w: %s: state file: %w", ErrCorrupt, t.Meta.Key, err)
	}
	return nil
}

// CheckRAM checks the data of the template's RAM file against its
// record: ErrCorrupt if it changed (a clone would run a guest no one
// booted).
func (t Template) CheckRAM() error {
	if sum, err := sumData(t.RAM()); err != nil || sum != t.Meta.RAMCRC32C {
		return fmt.Errorf("%w: %s: RAM file's contents changed since it was made (%v)", ErrCorrupt, t.Meta.Key, err)
	}
	return nil
}

// CheckTranslations checks the template's image of translated code
// against its record (nothing to check without one): ErrCorrupt if it
// changed.
func (t Template) CheckTranslations() error {
	if err := checkFile(t.Translations(), t.Meta.TranslationsBytes, t.Meta.TranslationsSHA256); err != nil {
		return fmt.Errorf("%w: %s: translations file: %w", ErrCorrupt, t.Meta.Key, err)
	}
	return nil
}

// Make makes the template of key by calling fill with an empty directory
// to leave RAMFile and StateFile in, then records and publishes it. Only
// one process makes a given template at a time: if another holds the
// lock, Make returns ErrBusy at once (the caller boots cold rather than
// wait). A template that appears meanwhile is returned as it is.
func (s Store) Make(key string, fill func(dir string) error) (Template, error) {
	if !keyRe.MatchString(key) {
		return Template{}, fmt.Errorf("template key %q: not a key", key)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return Template{}, fmt.Errorf("template store: %w", err)
	}
	unlock, err := s.lock(key)
	if err != nil {
		return Template{}, err
	}
	defer unlock()
	if t, err := s.Lookup(key); err == nil {
		return t, nil
	}
	// What a maker killed midway left (no one else makes this key now).
	left, _ := filepath.Glob(filepath.Join(s.Dir, ".making-"+key+"-*"))
	for _, d := range left {
		os.RemoveAll(d)
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(s.Dir, ".making-"+key+"-")
	if err != nil {
		return Template{}, fmt.Errorf("template store: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := fill(tmp); err != nil {
		return Template{}, err
	}
	meta, err := record(tmp, key)
	if err != nil {
		return Template{}, err
	}
	meta.MakeMs = time.Since(start).Milliseconds()
	if err := writeMeta(tmp, meta); err != nil {
		return Template{}, err
	}
	// A stale or corrupt template of this key goes first; under the lock
	// no one else replaces it meanwhile.
	if err := s.remove(key); err != nil {
		return Template{}, err
	}
	if err := os.Rename(tmp, s.path(key)); err != nil {
		return Template{}, fmt.Errorf("template store: %w", err)
	}
	syncDir(s.Dir)
	// What record just hashed, under the lock: not hashed again.
	return Template{Dir: s.path(key), Meta: meta}, nil
}

// record fsyncs the made files and describes them.
func record(dir, key string) (Meta, error) {
	m := Meta{Version: Version, Key: key, Made: time.Now().UTC()}
	for _, name := range []string{RAMFile, StateFile} {
		if err := syncFile(filepath.Join(dir, name)); err != nil {
			return m, err
		}
	}
	ram, err := os.Stat(filepath.Join(dir, RAMFile))
	if err != nil {
		return m, fmt.Errorf("template: %w", err)
	}
	m.RAMBytes, m.RAMModNano = ram.Size(), ram.ModTime().UnixNano()
	if m.RAMCRC32C, err = sumData(filepath.Join(dir, RAMFile)); err != nil {
		return m, fmt.Errorf("template: %w", err)
	}
	if m.StateBytes, m.StateSHA256, err = hashFile(filepath.Join(dir, StateFile)); err != nil {
		return m, fmt.Errorf("template: %w", err)
	}
	if m.StateBytes == 0 {
		return m, fmt.Errorf("template: empty state file")
	}
	if err := syncFile(filepath.Join(dir, TranslationsFile)); errors.Is(err, os.ErrNotExist) {
		return m, nil
	} else if err != nil {
		return m, err
	}
	if m.TranslationsBytes, m.TranslationsSHA256, err = hashFile(filepath.Join(dir, TranslationsFile)); err != nil {
		return m, fmt.Errorf("template: %w", err)
	}
	return m, nil
}

// syncFile fsyncs a made file.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("template: sync %s: %w", filepath.Base(path), err)
	}
	return nil
}

func writeMeta(dir string, m Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, MetaFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("template: write record: %w", err)
	}
	return nil
}

// lock takes the key's lock without waiting (ErrBusy if taken).
func (s Store) lock(key string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.Dir, "."+key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("template lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrBusy, key)
		}
		return nil, fmt.Errorf("template lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// Drop removes the template of key, waiting for no one: a pod already
// started from it keeps its open files. It is not an error if there is
// none.
func (s Store) Drop(key string) error {
	if !keyRe.MatchString(key) {
		return fmt.Errorf("template key %q: not a key", key)
	}
	return s.remove(key)
}

// remove moves a template out of the way, then deletes it: a lookup never
// sees half of one.
func (s Store) remove(key string) error {
	p := s.path(key)
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	trash, err := os.MkdirTemp(s.Dir, ".dropping-"+key+"-")
	if err != nil {
		return fmt.Errorf("template store: %w", err)
	}
	defer os.RemoveAll(trash)
	if err := os.Rename(p, filepath.Join(trash, key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("drop template %s: %w", key, err)
	}
	return nil
}

// Entry is one template directory as List finds it.
type Entry struct {
	Key      string
	Template Template
	// Err is why the template cannot be used (nil if it can).
	Err error
}

// List returns every template in the store, checked, by key.
func (s Store) List() ([]Entry, error) {
	ds, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("template store: %w", err)
	}
	var out []Entry
	for _, d := range ds {
		if !d.IsDir() || !keyRe.MatchString(d.Name()) {
			continue
		}
		t, err := s.Lookup(d.Name())
		out = append(out, Entry{Key: d.Name(), Template: t, Err: err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// DiskBytes is how much of the disk a template's files take.
func (t Template) DiskBytes() int64 {
	var n int64
	for _, name := range []string{RAMFile, StateFile, MetaFile, ConsoleFile} {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(t.Dir, name), &st) == nil {
			n += st.Blocks * 512
		}
	}
	return n
}

func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// errChanged: a template's file is not what its record says.
var errChanged = errors.New("changed since it was made")

// checkFile checks that the file at path has size bytes hashing to sum
// (path "": nothing to check).
func checkFile(path string, size int64, sum string) error {
	if path == "" {
		return nil
	}
	n, got, err := hashFile(path)
	if err != nil {
		return err
	}
	if n != size || got != sum {
		return errChanged
	}
	return nil
}

// sumData is the CRC-32C of the data of a sparse file: each extent's
// offset, length and bytes, skipping holes (most of a guest's RAM, which
// it never touched), so a check costs what the template holds, not the
// guest's size. CRC-32C runs at memory speed here (the CPU's CRC32
// instruction: ~10 ms for a template's ~50 MB, against ~45 ms for
// SHA-256 even with the SHA extensions), and a clone's start waits for it.
func sumData(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	buf := make([]byte, 1<<20)
	fd := int(f.Fd())
	for off := int64(0); off < st.Size(); {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		} else if err != nil {
			return "", err
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%d+%d\n", start, end-start)
		if _, err := io.CopyBuffer(h, io.NewSectionReader(f, start, end-start), buf); err != nil {
			return "", err
		}
		off = end
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// IsKey says whether s has the form of a template key.
func IsKey(s string) bool { return keyRe.MatchString(strings.TrimSpace(s)) }
