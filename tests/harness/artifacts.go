// Package harness is the test side of the stage0 contract: it finds the
// built artifacts, unpacks the stage1 ACI as rkt would, and starts and checks
// on VMs and pods for the end-to-end tests.
package harness

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BuildDir is where `make` put the artifacts (STAGE1_BUILD_DIR).
func BuildDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("STAGE1_BUILD_DIR")
	if d == "" {
		d = "../build"
	}
	d, err := filepath.Abs(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "stage1-kvm.aci")); err != nil {
		t.Fatalf("no built stage1 in %s (run `make` first, or set STAGE1_BUILD_DIR): %v", d, err)
	}
	return d
}

// ACI is the built stage1 image.
func ACI(t testing.TB) string {
	return filepath.Join(BuildDir(t), "stage1-kvm.aci")
}

// Unpack extracts an ACI (manifest and rootfs/) into dir, as rkt's stage0
// does into a pod's stage1/ directory.
func Unpack(aciPath, dir string) error {
	f, err := os.Open(aciPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read %s: %w", aciPath, err)
		}
		name := filepath.Clean(h.Name)
		if strings.HasPrefix(name, "..") || filepath.IsAbs(name) {
			return fmt.Errorf("unsafe path %q in %s", h.Name, aciPath)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode)&os.ModePerm); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&os.ModePerm)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected entry type %c for %s", h.Typeflag, h.Name)
		}
	}
}
