package tests

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// aceDeadline is the line of the validator's source that gives each
// metadata request its deadline.
const aceDeadline = "Timeout: 100 * time.Millisecond,"

// aceModule is the appc/spec module that go.mod requires; the ACE
// validator (a main package) and its image manifests are in its ace/.
const aceModule = "github.com/appc/spec"

// buildACEValidator builds the ACE validator statically from the module
// cache and returns the binary and the directory of its manifests. A
// non-empty deadline replaces the metadata client's 100 ms (a Go
// expression, e.g. "10 * time.Second"): the validator's sources are then
// built from a copy, in a module that requires what ours does, with that
// one line changed.
func buildACEValidator(t *testing.T, deadline string) (bin []byte, aceDir string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", aceModule).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", aceModule, err)
	}
	aceDir = filepath.Join(strings.TrimSpace(string(out)), "ace")
	tmp := t.TempDir()
	p := filepath.Join(tmp, "ace-validator")
	cmd := exec.Command("go", "build", "-trimpath", "-o", p, aceModule+"/ace")
	if deadline != "" {
		src := filepath.Join(tmp, "src")
		copyACESources(t, aceDir, src, deadline)
		cmd = exec.Command("go", "build", "-trimpath", "-o", p, ".")
		cmd.Dir = src
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	bin, err = os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bin, aceDir
}

// copyACESources copies the validator's Go sources (not its tests) into
// dst, a module with our go.mod's requirements and go.sum, and gives its
// metadata client the deadline.
func copyACESources(t *testing.T, aceDir, dst, deadline string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	srcs, err := filepath.Glob(filepath.Join(aceDir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range srcs {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		code, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "validator.go" {
			if n := strings.Count(string(code), aceDeadline); n != 1 {
				t.Fatalf("%s: %q found %d times, want once (the validator changed?)", f, aceDeadline, n)
			}
			code = []byte(strings.Replace(string(code), aceDeadline, "Timeout: "+deadline+",", 1))
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), code, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	first, rest, _ := strings.Cut(string(mod), "\n")
	if !strings.HasPrefix(first, "module ") {
		t.Fatalf("../go.mod starts with %q", first)
	}
	sum, err := os.ReadFile("../go.sum")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "go.mod"), []byte("module acevalidator\n"+rest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
}

// aceImage writes the ACI the appc build makes from one of the validator's
// manifests: the manifest with this host's os and arch, the validator at
// /ace-validator and the main app's working directory.
func aceImage(t *testing.T, aceDir, which string, bin []byte) string {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join(aceDir, "image_manifest_"+which+".json.in"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := strings.NewReplacer("@ACI_OS@", "linux", "@ACI_ARCH@", "amd64").Replace(string(tmpl))
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	mtime := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(name string, mode int64, data []byte) {
		h := &tar.Header{Name: name, Mode: mode, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(data))}
		if data == nil {
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("manifest", 0o644, []byte(manifest))
	add("rootfs", 0o755, nil)
	add("rootfs/ace-validator", 0o755, bin)
	add("rootfs/opt", 0o755, nil)
	add("rootfs/opt/acvalidator", 0o755, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ace-validator-"+which+".aci")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// appc's ACE validator, as rkt runs it: `rkt run --mds-register --volume
// database,kind=empty ace-validator-main.aci ace-validator-sidekick.aci`
// (one vCPU, no retry). The main app checks its environment, working
// directory, the database volume (a real read-write mount, shared with
// the sidekick), its event handlers' order and the metadata service (pod
// and app metadata, HMAC sign and verify) through AC_METADATA_URL from
// inside the guest.
//
// The validator gives each metadata request 100 ms. Under TCG a fresh Go
// program's first HTTP request takes 100-300 ms in the guest however warm
// the network path is (its own code is translated on first use;
// docs/benchmarks.md, "The ACE validator's first metadata request"), so
// the unchanged validator runs only under KVM; under TCG it is skipped
// with that reason, and TestACEValidatorChecks runs every check of the
// validator with that one deadline raised.
func TestACEValidator(t *testing.T) {
	if accel, _ := chooseAccel(t); accel != qemu.KVM {
		t.Skip("the ACE validator's 100 ms metadata deadline is out of reach under TCG (a fresh Go program's first request takes 100-300 ms); TestACEValidatorChecks runs its checks")
	}
	runACEValidator(t, "")
}

// Every check of the ACE validator, under any accelerator: the validator
// as above, built with its metadata client's deadline raised from 100 ms
// to 10 s and nothing else changed.
func TestACEValidatorChecks(t *testing.T) {
	runACEValidator(t, "10 * time.Second")
}

// runACEValidator runs one ACE validator pod with rkt's command line
// and the given metadata deadline (see buildACEValidator) and checks that
// every app passed and reported so.
func runACEValidator(t *testing.T, deadline string) {
	bin, aceDir := buildACEValidator(t, deadline)
	main := aceImage(t, aceDir, "main", bin)
	sidekick := aceImage(t, aceDir, "sidekick", bin)
	vol, err := types.VolumeFromString("database,kind=empty")
	if err != nil {
		t.Fatal(err)
	}
	mds := harness.NewMetadataService(t)
	token := harness.NewMDSToken(t)
	s := harness.NewStage0(t)
	p := s.Prepare(t, harness.PodOpts{Volumes: []types.Volume{*vol}}, main, sidekick)
	if got := strings.Join(p.Apps, " "); got != "ace-validator-main ace-validator-sidekick" {
		t.Fatalf("apps %q", got)
	}
	mds.Register(t, p, token)
	r := p.Run(t, harness.RunOpts{MDSToken: token})
	assertNoLeaks(t, p)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	for _, want := range []string{"prestart OK", "main OK", "sidekick OK", "poststop OK"} {
		if !containsLine(r.Stdout, want) {
			t.Errorf("no %q in the output", want)
		}
	}
	for _, app := range p.Apps {
		if code, ok := p.AppStatus(app); !ok || code != 0 {
			t.Errorf("app %s: status %d (recorded: %v)", app, code, ok)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
}

// Without --mds-token the apps get no AC_METADATA_URL; with it, they get
// rkt's URL: the host side of the pod's network, rkt's port, the token.
func TestMetadataURL(t *testing.T) {
	show := sh("show", `echo "url=${AC_METADATA_URL-unset}"`)
	_, r := runPod(t, harness.RunOpts{}, show)
	if r.ExitCode != 0 || !containsLine(r.Stdout, "url=unset") {
		t.Errorf("without a token: exit %d, stdout %q", r.ExitCode, r.Stdout)
	}
	_, r = runPod(t, harness.RunOpts{MDSToken: "tok123"}, show)
	if want := "url=http://172.16.28.1:18112/tok123"; r.ExitCode != 0 || !containsLine(r.Stdout, want) {
		t.Errorf("with a token: exit %d, stdout %q, want %q\nstderr:\n%s", r.ExitCode, r.Stdout, want, r.Stderr)
	}
	_, r = runPod(t, harness.RunOpts{MDSToken: "tok123", Net: "none"}, show)
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, "mds-token") {
		t.Errorf("with a token and no network: exit %d, stderr %q", r.ExitCode, r.Stderr)
	}
}
