package qemu

import "fmt"

// VirtioFSDArgv is the command line of the virtiofsd serving source on the
// listening socket it inherits as descriptor fd.
func VirtioFSDArgv(b Binary, source string, fd int) []string {
	var a []string
	if b.Loader != "" {
		a = append(a, b.Loader, "--library-path", b.LibDir, "--argv0", "virtiofsd")
	}
	return append(a, b.VirtioFSD,
		fmt.Sprintf("--fd=%d", fd),
		"-o", "source="+source,
		// auto: the guest revalidates what it cached after a second, and
		// writes go through to the host at once (no write-back cache),
		// as with the 9p shares.
		"-o", "cache=auto",
		// Neither device nodes nor file capabilities on the host, as
		// with the 9p shares (docs/security.md); these two are also out
		// of the bounding set it is started with.
		"-o", "modcaps=-mknod:-setfcap",
	)
}
