package tests

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/settings"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/template"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
	"golang.org/x/sys/unix"
)

// identityApp prints what must differ between clones of one template:
// the boot id, bytes from the CRNG, the hostname and the MAC of eth0
// ("none" without a network). (The machine id shows in the journal's
// directory name.)
const identityApp = `cat /proc/sys/kernel/random/boot_id; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; echo; hostname; cat /sys/class/net/eth0/address 2>/dev/null || echo none`

// templateDir is a template store of the test's own. t.TempDir's path,
// named after the test, is long: a making VM's sockets are not made in
// the store (they once were, and no template could be made in such a
// store).
func templateDir(t *testing.T) string { return t.TempDir() }

// templateEnv points run at a template store of the test's own.
func templateEnv(dir string) []string {
	return []string{settings.TemplateEnv + "=on", settings.TemplateDirEnv + "=" + dir}
}

// startedFrom is how the pod's VM started (timings.json).
func startedFrom(t *testing.T, p *harness.Pod) string {
	t.Helper()
	return readTimings(t, p).StartedFrom
}

// runIdentity runs one identity pod and returns its output lines.
func runIdentity(t *testing.T, o harness.RunOpts) (*harness.Pod, []string, harness.RunResult) {
	t.Helper()
	p, r := runPod(t, o, sh("app", identityApp))
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("output %q", r.Stdout)
	}
	return p, lines, r
}

// The first pod of a shape makes its template; the next start from it,
// each with its own boot id, random numbers, hostname, machine id and
// MAC; the template is listed, and dropped, by the templates command.
func TestTemplateClonesDiffer(t *testing.T) {
	dir := templateDir(t)
	seen := map[string]string{}
	for i, want := range []string{"new-template", "template", "template"} {
		p, lines, _ := runIdentity(t, harness.RunOpts{Env: templateEnv(dir)})
		if got := startedFrom(t, p); got != want {
			t.Fatalf("pod %d started %q, want %q", i, got, want)
		}
		if lines[2] != "rkt-"+p.UUID {
			t.Errorf("pod %d: hostname %q, want the pod's", i, lines[2])
		}
		machineID := strings.ReplaceAll(p.UUID, "-", "")
		if _, err := os.Stat(filepath.Join(p.Dir, "stage1/rootfs/var/log/journal", machineID)); err != nil {
			t.Errorf("pod %d: no journal for its machine id: %v", i, err)
		}
		if lines[3] == contract.DeviceMAC(0) || lines[3] == "none" {
			t.Errorf("pod %d: eth0 has MAC %q, not its own", i, lines[3])
		}
		for j, l := range lines {
			if j == 2 {
				continue
			}
			if other, dup := seen[l]; dup {
				t.Errorf("pod %d prints %q, as %s did: clones are twins", i, l, other)
			}
			seen[l] = "pod " + string(rune('0'+i))
		}
	}
	// Templates off: the pod boots cold, whatever the store holds.
	p, lines, _ := runIdentity(t, harness.RunOpts{Env: []string{settings.TemplateEnv + "=off", settings.TemplateDirEnv + "=" + dir}})
	if got := startedFrom(t, p); got != "cold" {
		t.Errorf("%s=off: started %q", settings.TemplateEnv, got)
	}
	if _, dup := seen[lines[0]]; dup {
		t.Errorf("a cold pod has a clone's boot id")
	}
	out, err := exec.Command(filepath.Join(harness.BuildDir(t), "bin", "templates"), "--dir", dir, "list").CombinedOutput()
	if err != nil || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "\tok") {
		t.Fatalf("templates list: %v\n%s", err, out)
	}
	key := strings.Fields(string(out))[0]
	// The making guest's warm-up (a bus session, an app started and
	// ended) went through: its errors would be on the guest's console.
	console, err := os.ReadFile(filepath.Join(dir, key, template.ConsoleFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(console), "stage1-guest: warm-up:") {
		t.Errorf("the template's warm-up failed:\n%s", console)
	}
	if out, err := exec.Command(filepath.Join(harness.BuildDir(t), "bin", "templates"), "--dir", dir, "drop", key).CombinedOutput(); err != nil {
		t.Fatalf("templates drop: %v\n%s", err, out)
	}
	if _, err := (template.Store{Dir: dir}).Lookup(key); err == nil {
		t.Error("template still there after drop")
	}
}

// A corrupt template is made again; a state QEMU refuses gets the pod
// booted cold, with a notice, and the template dropped. No pod fails.
func TestTemplateCorrupt(t *testing.T) {
	dir := templateDir(t)
	ents, _ := firstTemplate(t, dir, harness.RunOpts{Net: "none", Env: templateEnv(dir)})
	tp := ents[0].Template

	// Changed behind the store's back: found out, made again.
	if err := os.Truncate(tp.RAM(), 4096); err != nil {
		t.Fatal(err)
	}
	p, _, r := runIdentity(t, harness.RunOpts{Net: "none", Env: templateEnv(dir)})
	if got := startedFrom(t, p); got != "new-template" || !strings.Contains(r.Stderr, "corrupt template") {
		t.Fatalf("after corrupting the RAM file: started %q, stderr:\n%s", got, r.Stderr)
	}

	// Changed in place, its size and time kept: found out by its hash,
	// which runs while the clone's QEMU starts; before the guest runs,
	// the pod boots cold with a notice and the template is dropped.
	tp, err := (template.Store{Dir: dir}).Lookup(ents[0].Key)
	if err != nil {
		t.Fatalf("the template made again: %v", err)
	}
	flipRAM(t, tp)
	p, _, r = runIdentity(t, harness.RunOpts{Net: "none", Env: templateEnv(dir)})
	if got := startedFrom(t, p); got != "cold" || !strings.Contains(r.Stderr, "RAM file's contents changed") {
		t.Fatalf("after changing the RAM file in place: started %q, stderr:\n%s", got, r.Stderr)
	}
	if _, err := (template.Store{Dir: dir}).Lookup(ents[0].Key); !errors.Is(err, template.ErrNotFound) {
		t.Fatalf("a template whose RAM changed is still there: %v", err)
	}
	firstTemplate(t, dir, harness.RunOpts{Net: "none", Env: templateEnv(dir)})

	// A state that checks out (its record rewritten to match) but that
	// QEMU cannot load: cold boot, notice, template dropped.
	tp, err = (template.Store{Dir: dir}).Lookup(ents[0].Key)
	if err != nil {
		t.Fatalf("the template made again: %v", err)
	}
	if err := os.WriteFile(tp.State(), []byte("not a QEMU state"), 0o600); err != nil {
		t.Fatal(err)
	}
	rewriteRecord(t, tp)
	p, _, r = runIdentity(t, harness.RunOpts{Net: "none", Env: templateEnv(dir)})
	if got := startedFrom(t, p); got != "cold" || !strings.Contains(r.Stderr, "booting cold") {
		t.Fatalf("with a bad state: started %q, stderr:\n%s", got, r.Stderr)
	}
	if strings.Count(r.Stderr, "\n") > 2 {
		t.Errorf("the fallback takes more than a line's notice:\n%s", r.Stderr)
	}
	if _, err := (template.Store{Dir: dir}).Lookup(ents[0].Key); err == nil {
		t.Error("a template QEMU refused is still there")
	}
}

// flipRAM inverts the first byte of tp's RAM file that holds data,
// keeping the file's size and time.
func flipRAM(t *testing.T, tp template.Template) {
	t.Helper()
	st, err := os.Stat(tp.RAM())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(tp.RAM(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tp.RAM(), st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// firstTemplate runs the first pod of a shape, which makes its template,
// and returns the store's one entry and the pod's run.
func firstTemplate(t *testing.T, dir string, o harness.RunOpts) ([]template.Entry, harness.RunResult) {
	t.Helper()
	p, _, r := runIdentity(t, o)
	if got := startedFrom(t, p); got != "new-template" {
		t.Fatalf("first pod started %q", got)
	}
	ents, err := (template.Store{Dir: dir}).List()
	if err != nil || len(ents) != 1 || ents[0].Err != nil {
		t.Fatalf("store: %+v %v", ents, err)
	}
	return ents, r
}

// rewriteRecord makes tp's record match its files again.
func rewriteRecord(t *testing.T, tp template.Template) {
	t.Helper()
	m := tp.Meta
	m.StateBytes, m.StateSHA256 = sizeAndSum(t, tp.State())
	if m.TranslationsBytes != 0 {
		m.TranslationsBytes, m.TranslationsSHA256 = sizeAndSum(t, filepath.Join(tp.Dir, template.TranslationsFile))
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(tp.Dir, template.MetaFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// sizeAndSum is a file's size and SHA-256, as the template store records.
func sizeAndSum(t *testing.T, path string) (int64, string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return st.Size(), strings.Fields(string(sum))[0]
}

// Under TCG a template keeps the code its QEMU translated, and a clone's
// QEMU starts with it. An image QEMU refuses (its record rewritten to
// match, so that only QEMU's own checks stand) leaves the clone to
// translate everything itself: it runs as well, and nothing else changes.
func TestTemplateTranslations(t *testing.T) {
	dir := templateDir(t)
	opts := harness.RunOpts{Net: "none", Env: templateEnv(dir), Debug: true}
	ents, r := firstTemplate(t, dir, opts)
	if !strings.Contains(r.Stderr, "VM: tcg,") {
		t.Skip("the VM does not run under TCG: no translated code")
	}
	tp := ents[0].Template
	if tp.Translations() == "" {
		t.Fatalf("a TCG template without translated code; stderr:\n%s", r.Stderr)
	}
	p, _, r := runIdentity(t, opts)
	if tm := readTimings(t, p); tm.StartedFrom != "template" || tm.TranslationsMs <= 0 {
		t.Fatalf("clone: started %q, translations loaded in %v ms; stderr:\n%s", tm.StartedFrom, tm.TranslationsMs, r.Stderr)
	}

	image, err := os.ReadFile(tp.Translations())
	if err != nil || len(image) < 4096 {
		t.Fatalf("image: %d bytes, %v", len(image), err)
	}

	// Changed behind the store's back: the clone runs without it, the
	// template is dropped, the next pod makes a new one.
	spoilt := append([]byte(nil), image...)
	spoilt[len(spoilt)/2] ^= 1
	if err := os.WriteFile(tp.Translations(), spoilt, 0o600); err != nil {
		t.Fatal(err)
	}
	p, _, r = runIdentity(t, opts)
	if tm := readTimings(t, p); tm.StartedFrom != "template" || tm.TranslationsMs != 0 || !strings.Contains(r.Stderr, "dropping the template") {
		t.Fatalf("a changed image: started %q, translations %v ms; stderr:\n%s", tm.StartedFrom, tm.TranslationsMs, r.Stderr)
	}
	ents, _ = firstTemplate(t, dir, opts)
	tp = ents[0].Template
	if image, err = os.ReadFile(tp.Translations()); err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func([]byte){
		"another magic": func(b []byte) { b[0] ^= 0xff },
		// The first block's offset (after the 64-byte header and the
		// prologue) points into the middle of a block.
		"a block out of line": func(b []byte) {
			hdr := 64
			prologue := int(le64(b[32:]) - le64(b[24:]))
			b[hdr+prologue] += 8
		},
	} {
		bad := append([]byte(nil), image...)
		spoil(bad)
		if err := os.WriteFile(tp.Translations(), bad, 0o600); err != nil {
			t.Fatal(err)
		}
		rewriteRecord(t, tp)
		p, _, r := runIdentity(t, opts)
		tm := readTimings(t, p)
		if tm.StartedFrom != "template" || tm.TranslationsMs != 0 || !strings.Contains(r.Stderr, "clone without its template's translated code") {
			t.Errorf("%s: started %q, translations %v ms; stderr:\n%s", name, tm.StartedFrom, tm.TranslationsMs, r.Stderr)
		}
	}
}

// le64 is a little-endian uint64 at the start of b.
func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// Several first pods of a new shape at once: every pod runs, one makes
// the template, and it is whole afterwards.
func TestTemplateConcurrentFirstPods(t *testing.T) {
	const n = 3
	dir := templateDir(t)
	s := harness.NewStage0(t)
	var runs []*harness.Running
	var pods []*harness.Pod
	for i := 0; i < n; i++ {
		p := s.Prepare(t, harness.PodOpts{}, harness.BuildACI(t, sh("app", "echo ok")))
		pods = append(pods, p)
		runs = append(runs, p.Start(t, harness.RunOpts{Net: "none", Env: templateEnv(dir)}))
	}
	made := 0
	for i, r := range runs {
		res := r.Wait()
		if res.ExitCode != 0 || res.Stdout != "ok\n" {
			t.Errorf("pod %d: exit %d, stdout %q, stderr:\n%s", i, res.ExitCode, res.Stdout, res.Stderr)
		}
		if startedFrom(t, pods[i]) == "new-template" {
			made++
		}
		assertNoLeaks(t, pods[i])
	}
	ents, err := (template.Store{Dir: dir}).List()
	if made != 1 || err != nil || len(ents) != 1 || ents[0].Err != nil {
		t.Fatalf("%d pods made a template; store %+v, %v", made, ents, err)
	}
}
