package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stage1-kvm/stage1-kvm/rootfs-builder/aci"
	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

func runACI(args []string) error {
	fs := flag.NewFlagSet("aci", flag.ContinueOnError)
	out := fs.String("o", "", "ACI file to write")
	version := fs.String("version", "", "version label")
	kernel := fs.String("kernel", "", "guest kernel (bzImage)")
	image := fs.String("image", "", "guest OS image")
	binDir := fs.String("bin", "", "directory holding the entry-point binaries (init, enter, gc, stop) and the jailer")
	qemu := fs.String("qemu", "", "QEMU binary to bundle (our static build, qemu/build.sh)")
	firmware := fs.String("firmware", "/usr/share/qemu/qboot.rom", "comma-separated QEMU firmware files to bundle")
	virtiofsd := fs.String("virtiofsd", "/usr/lib/qemu/virtiofsd", "virtiofsd binary to bundle (empty for none)")
	netPlugins := fs.String("net-plugins", "", "directory of CNI plugin binaries to bundle")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var missing []string
	for name, v := range map[string]string{"-o": *out, "-qemu": *qemu, "-version": *version, "-kernel": *kernel, "-image": *image, "-bin": *binDir} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("aci: missing %s", strings.Join(missing, ", "))
	}
	eps := map[string]string{}
	for _, ep := range contract.EntryPoints {
		p := filepath.Join(*binDir, ep.File)
		if _, err := os.Stat(p); err == nil {
			eps[ep.Name] = p
		}
	}
	var plugins []string
	if *netPlugins != "" {
		entries, err := os.ReadDir(*netPlugins)
		if err != nil {
			return fmt.Errorf("aci: -net-plugins: %w", err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				plugins = append(plugins, filepath.Join(*netPlugins, e.Name()))
			}
		}
	}
	return aci.Build(aci.Config{
		NetPlugins:   plugins,
		Version:      *version,
		EntryPoints:  eps,
		Jailer:       filepath.Join(*binDir, contract.Jailer),
		Kernel:       *kernel,
		GuestImage:   *image,
		QEMU:         *qemu,
		QEMUFirmware: splitList(*firmware),
		VirtioFSD:    *virtiofsd,
		Output:       *out,
	})
}

// splitList splits a comma-separated flag value; empty means none.
func splitList(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}
