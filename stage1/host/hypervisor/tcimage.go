package hypervisor

import (
	"fmt"
	"os"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

// translationsFD is the name an image file's descriptor gets in QEMU
// (getfd).
const translationsFD = "stage1-translations"

// Our QEMU's commands (qemu/patches/0014) that write and read an image of
// TCG's translation cache.
const (
	saveTranslationsCommand = `{"execute":"x-tcg-cache-save","arguments":{"fdname":"` + translationsFD + `"}}`
	loadTranslationsCommand = `{"execute":"x-tcg-cache-load","arguments":{"fdname":"` + translationsFD + `"}}`
)

// SaveTranslations writes an image of the VM's translation cache to f:
// the code TCG translated up to now, at the addresses it has in this QEMU.
// The VM must be stopped (a template in the making, after SaveState).
// Under KVM there is none: ErrNotEmulated.
func (v *VM) SaveTranslations(f *os.File, timeout time.Duration) error {
	return v.passFile(f, saveTranslationsCommand, timeout)
}

// LoadTranslations loads an image SaveTranslations wrote into the empty
// translation cache of a clone of the same template, once its state is
// loaded and before it runs (between LoadState and Resume: loading the
// state empties the cache). QEMU checks the image whole before it takes
// any of it: on an error the clone runs as well, translating everything
// itself. Under KVM there is none: ErrNotEmulated.
func (v *VM) LoadTranslations(f *os.File, timeout time.Duration) error {
	err := v.passFile(f, loadTranslationsCommand, timeout)
	v.translations = err == nil
	return err
}

// passFile hands f to QEMU as translationsFD and runs cmd, which takes it.
func (v *VM) passFile(f *os.File, cmd string, timeout time.Duration) error {
	if v.accel != qemu.TCG {
		return ErrNotEmulated
	}
	m, err := v.qmpConnect(timeout)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	if err := giveFD(m, translationsFD, f); err != nil {
		return err
	}
	reply, err := m.Run([]byte(cmd))
	if err := checkReply(cmd, reply, err); err != nil {
		return fmt.Errorf("translation cache image: %w", err)
	}
	return nil
}
