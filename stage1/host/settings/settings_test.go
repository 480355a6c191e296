package settings

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	s, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{Accel: "auto", TCGBufferMiB: DefaultTCGBufferMiB, SharedFS: qemu.NineP, LockFD: -1}
	if s.Accel != want.Accel || s.TCGBufferMiB != want.TCGBufferMiB || s.SharedFS != want.SharedFS || s.LockFD != -1 || s.QEMU != "" || len(s.KernelArgs) != 0 || s.BootTimeout != 0 {
		t.Errorf("defaults %+v, want %+v", s, want)
	}
	if s.BootTimeoutFor(qemu.TCG) != DefaultBootTimeoutTCG || s.BootTimeoutFor(qemu.KVM) != DefaultBootTimeoutKVM {
		t.Errorf("default boot timeouts %v / %v", s.BootTimeoutFor(qemu.TCG), s.BootTimeoutFor(qemu.KVM))
	}
	if !s.Template || s.TemplateDir != DefaultTemplateDir {
		t.Errorf("templates %v in %q, want on in %s", s.Template, s.TemplateDir, DefaultTemplateDir)
	}
}

func TestTemplateSettings(t *testing.T) {
	s, err := FromEnv(env(map[string]string{TemplateEnv: "off", TemplateDirEnv: "/srv/tpl"}))
	if err != nil || s.Template || s.TemplateDir != "/srv/tpl" {
		t.Errorf("off, /srv/tpl: %+v, %v", s, err)
	}
	if s, err := FromEnv(env(map[string]string{TemplateEnv: "on"})); err != nil || !s.Template {
		t.Errorf("on: %+v, %v", s, err)
	}
}

func TestFromEnv(t *testing.T) {
	s, err := FromEnv(env(map[string]string{
		AccelEnv:       "tcg",
		QEMUEnv:        "/usr/bin/qemu-system-x86_64",
		KernelArgsEnv:  " systemd.log_level=debug  quiet ",
		TCGBufferEnv:   "16",
		SharedFSEnv:    "virtiofs",
		BootTimeoutEnv: "90s",
		LockFDEnv:      "7",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Accel != "tcg" || s.QEMU != "/usr/bin/qemu-system-x86_64" || s.TCGBufferMiB != 16 || s.SharedFS != qemu.Virtiofs || s.LockFD != 7 {
		t.Errorf("settings %+v", s)
	}
	if !slices.Equal(s.KernelArgs, []string{"systemd.log_level=debug", "quiet"}) {
		t.Errorf("kernel args %q", s.KernelArgs)
	}
	if s.BootTimeoutFor(qemu.KVM) != 90*time.Second || s.BootTimeoutFor(qemu.TCG) != 90*time.Second {
		t.Errorf("boot timeout %v", s.BootTimeoutFor(qemu.KVM))
	}
	for _, size := range []string{"1", "2048"} {
		if s, err := FromEnv(env(map[string]string{TCGBufferEnv: size})); err != nil || s.TCGBufferMiB == 0 {
			t.Errorf("%s=%s: %v", TCGBufferEnv, size, err)
		}
	}
}

// Every bad value is refused, with the variable's name in the error.
func TestFromEnvRefuses(t *testing.T) {
	for _, c := range []struct{ name, value string }{
		{AccelEnv, "xen"},
		{TCGBufferEnv, "0"},
		{TCGBufferEnv, "-4"},
		{TCGBufferEnv, "16M"},
		{TCGBufferEnv, "2049"},
		{TCGBufferEnv, " 8"},
		{SharedFSEnv, "nfs"},
		{SharedFSEnv, "VIRTIOFS"},
		{SharedFSEnv, "9P"},
		{TemplateEnv, "yes"},
		{TemplateEnv, "OFF"},
		{TemplateDirEnv, "tpl"},
		{TemplateDirEnv, "/a,b"},
		{BootTimeoutEnv, "90"},
		{BootTimeoutEnv, "soon"},
		{BootTimeoutEnv, "0s"},
		{BootTimeoutEnv, "-5s"},
		{LockFDEnv, "x"},
		{LockFDEnv, "-1"},
		{QEMUEnv, "/a,b"},
	} {
		_, err := FromEnv(env(map[string]string{c.name: c.value}))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s=%q: err = %v, want ErrInvalid naming the variable", c.name, c.value, err)
		}
	}
}

func TestFromEnvReportsAll(t *testing.T) {
	_, err := FromEnv(env(map[string]string{AccelEnv: "xen", SharedFSEnv: "nfs", BootTimeoutEnv: "never"}))
	for _, name := range []string{AccelEnv, SharedFSEnv, BootTimeoutEnv} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("err = %v, want it to name %s", err, name)
		}
	}
}
