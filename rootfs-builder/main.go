// Command rootfs-builder builds the guest OS image and assembles the stage1
// ACI from the build host's Debian packages and our own binaries.
//
//	rootfs-builder image -o guest.img GUEST_PROGRAM...
//	rootfs-builder aci -o stage1-kvm.aci -kernel bzImage -image guest.img -bin DIR
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/stage1-kvm/stage1-kvm/rootfs-builder/guestimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "rootfs-builder: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: rootfs-builder image|aci [flags]")
	}
	switch args[0] {
	case "image":
		fs := flag.NewFlagSet("image", flag.ContinueOnError)
		out := fs.String("o", "", "image file to write")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *out == "" {
			return fmt.Errorf("image: -o is required")
		}
		return guestimage.Build(guestimage.Config{Output: *out, GuestPrograms: fs.Args()})
	case "aci":
		return runACI(args[1:])
	default:
		return fmt.Errorf("unknown command %q (want image or aci)", args[0])
	}
}
