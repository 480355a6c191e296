package qemu

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// listSep separates the items of a list in one fuzz string.
const listSep = "\x1e"

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, listSep)
}

// pick is the i-th item of list, cycling; "" for an empty list.
func pick(list []string, i int) string {
	if len(list) == 0 {
		return ""
	}
	return list[i%len(list)]
}

// FuzzArgv: every Config that Validate accepts must turn into a QEMU
// command line that says exactly what the Config says: the expected number
// of arguments, each QEMU option value made only of the sub-options the
// builder writes (so a path, tag, name or MAC cannot add one), every value
// taken from the Config found whole where it belongs, and a kernel command
// line of exactly the Config's words, as the guest kernel splits it.
func FuzzArgv(f *testing.F) {
	type seed struct {
		kernel, image, console, qmp, dataDir                 string
		ports, sockets, tags, paths, shareSockets, macs, cmd string
		mem, cpus, tb                                        int
		bits                                                 uint16
	}
	j := func(s ...string) string { return strings.Join(s, listSep) }
	cmd := j(KernelCmdline(contract.PodTarget, TCG, false, "systemd.hostname=h", "systemd.machine_id=0123")...)
	for _, s := range []seed{
		{"/s1/bzImage", "/s1/guest.img", "/pod/vm/console.log", "/pod/vm/qmp.sock", "/s1/qemu/share",
			j(contract.EventsPort, contract.StdoutPort, contract.StdinPort), j("/pod/vm/events.sock", "/pod/vm/stdout.sock", "/pod/vm/stdin.sock"),
			j("pod", "vol-0", "vol-1"), j("/pod/stage1/rootfs", "/data", "/ro"), "/pod/vm/virtiofs1.sock",
			j("02:00:00:00:00:01", "02:00:00:00:00:02"), cmd, 128, 1, 16, 0b0000_0100_0010_0100},
		{"/k", "/i", "", "", "", "", "", "", "", "", "", "", 64, 1, 0, 0},
		{"/k", "/i", "", "", "", "p", "/s", "pod", "/p", "", "", j("a", "b"), 64, 1, 0, 1 << 8},
		// Values that must not get through, or not change the argv.
		{"/k", "/i", "/c", "/q", "", "p,id=x", "/s", "pod", "/p", "", "", "a", 64, 1, 0, 0},
		{"/k", "/i", "/c", "/q", "", "p", "/s", "pod,readonly=on", "/p", "", "", "a", 64, 1, 0, 0},
		{"/k", "/i", "/c", "/q", "", "p", "/s", "pod", "/p,readonly=on", "", "", "a", 64, 1, 0, 0},
		{"/k", "/i", "/c", "/q", "", "p", "/s,server=on", "pod", "/p", "", "", "a", 64, 1, 0, 0},
		{"/k", "/i", "/c", "/q", "", "", "", "", "", "", "02:00:00:00:00:01,vhost=on", "a", 64, 1, 0, 0},
		{"/k", "/i", "/c", "/q", "", "", "", "", "", "", "", "systemd.hostname=a init=/bin/sh", 64, 1, 0, 0},
		{"/k", "/i", "/c", "/q", "", "", "", "", "", "", "", j("a", "", "b"), 64, 1, 0, 0},
		{"/k", "/i", "/c", "/q", "", "", "", "", "", "", "", j(`a="x`, `y"`), 64, 1, 0, 0},
		{"/k", "/i", "/c", "/q", "", "", "", "", "", "", "", "h=caf\u00e0", 64, 1, 0, 0},
		{"/k", "/i", "/c", "/q", "", "", "", "", "", "", "", "a\tb", 64, 1, 0, 0},
	} {
		f.Add(s.kernel, s.image, s.console, s.qmp, s.dataDir, s.ports, s.sockets, s.tags, s.paths,
			s.shareSockets, s.macs, s.cmd, s.mem, s.cpus, s.tb, s.bits)
	}
	tapFile, err := os.Open(os.DevNull)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tapFile.Close() })

	f.Fuzz(func(t *testing.T, kernel, image, console, qmp, dataDir, ports, sockets, tags, paths, shareSockets, macs, cmdline string,
		mem, cpus, tb int, bits uint16) {
		c := fuzzConfig(tapFile, kernel, image, console, qmp, dataDir, ports, sockets, tags, paths, shareSockets, macs, cmdline, mem, cpus, tb, bits)
		if c.Validate() != nil {
			return
		}
		a := Argv(c)
		if want := expectedArgc(c); len(a) != want {
			t.Fatalf("%d arguments, want %d:\n%q\nconfig %+v", len(a), want, a, c)
		}
		checkOptionValues(t, c, a)
		checkKernelCmdline(t, c, a)
	})
}

// fuzzConfig builds a Config from the fuzzer's values. bits: 0-1 the
// accelerator (one value is not valid), 2 console append, 3 a tap without
// file, 4-7 unused (they chose virtio consoles, which are gone), 8-11
// which shares are read-only, 12-15 which shares use virtiofs.
func fuzzConfig(tapFile *os.File, kernel, image, console, qmp, dataDir, ports, sockets, tags, paths, shareSockets, macs, cmdline string,
	mem, cpus, tb int, bits uint16) Config {
	c := Config{
		Binary:        Binary{Path: "/qemu", DataDir: dataDir},
		Accel:         []Accel{TCG, KVM, TCG, "xen"}[bits&3],
		Kernel:        kernel,
		Image:         image,
		Console:       console,
		ConsoleAppend: bits&(1<<2) != 0,
		QMPSocket:     qmp,
		MemoryMiB:     mem,
		CPUs:          cpus,
		TBSizeMiB:     tb,
		Cmdline:       split(cmdline),
	}
	for i, name := range split(ports) {
		c.Ports = append(c.Ports, Port{Name: name, Socket: pick(split(sockets), i)})
	}
	for i, tag := range split(tags) {
		s := Share{Tag: tag, Path: pick(split(paths), i)}
		if i < 4 {
			s.ReadOnly = bits&(1<<(8+i)) != 0
			if bits&(1<<(12+i)) != 0 {
				s.Transport, s.Socket = Virtiofs, pick(split(shareSockets), i)
			}
		}
		c.Shares = append(c.Shares, s)
	}
	for i, mac := range split(macs) {
		tap := Tap{File: tapFile, MAC: mac}
		if i == 0 && bits&(1<<3) != 0 {
			tap.File = nil
		}
		c.Taps = append(c.Taps, tap)
	}
	return c
}

// expectedArgc counts the arguments c must give, from the parts of the
// command line as documented, not from the builder.
func expectedArgc(c Config) int {
	virtiofs := slices.ContainsFunc(c.Shares, func(s Share) bool { return s.Transport == Virtiofs })
	n := 1 // the binary
	if c.Binary.DataDir != "" {
		n += 2 // -L dir
	}
	n += 2 + 4 + 2 + 2 // -M, -nodefaults -no-user-config -nographic -no-reboot, -m, -smp
	if virtiofs || c.Accel == TCG {
		n += 4 // -object memory-backend-memfd, -machine memory-backend
	}
	if virtiofs {
		n += 2 // -global virtio-mmio.force-legacy
	}
	n += 4 // -accel, -cpu
	n += 4 // -kernel, -append
	if c.QMPSocket != "" {
		n += 2
	}
	if c.Console == "" {
		n += 2 // -serial null
	} else {
		n += 4 // -chardev file, -serial chardev:console
	}
	n += 4 // -drive, -device virtio-blk-device
	n += 6 // rng object and device, balloon
	if ports := len(c.Ports); ports > 0 {
		n += 2 + 4*ports // the virtio-serial bus, then a chardev and a device each
	}
	n += 4 * len(c.Taps)   // -netdev, -device
	n += 4 * len(c.Shares) // -fsdev or -chardev, -device
	return n
}

// subOptions lists, for each QEMU option and the first part of its value
// (the backend or device type, "" where the value starts with key=value),
// the keys the builder writes.
var subOptions = map[string]map[string][]string{
	"-M":       {"microvm": {"acpi", "x-option-roms"}},
	"-machine": {"": {"memory-backend"}},
	"-global":  {"": {"virtio-mmio.force-legacy"}},
	"-accel":   {"tcg": {"tb-size"}, "kvm": nil},
	"-object": {
		"memory-backend-memfd": {"id", "share", "size"},
		"rng-random":           {"id", "filename"},
	},
	"-chardev": {
		"file":   {"id", "path", "append"},
		"socket": {"id", "path"},
	},
	"-drive": {"": {"id", "file", "format", "if", "readonly"}},
	"-device": {
		"virtio-blk-device":     {"drive"},
		"virtio-rng-device":     {"rng"},
		"virtio-balloon-device": {"free-page-reporting"},
		"virtio-serial-device":  {"max_ports"},
		"virtserialport":        {"chardev", "name"},
		"virtio-net-device":     {"netdev", "mac"},
		"virtio-9p-device":      {"fsdev", "mount_tag"},
		"vhost-user-fs-device":  {"chardev", "tag"},
	},
	"-netdev": {"tap": {"id", "fd"}},
	"-fsdev":  {"local": {"id", "path", "security_model", "multidevs", "readonly"}},
	"-qmp":    {"unix:": {"server", "wait"}},
}

// checkOptionValues parses every QEMU option value of a as QEMU does (a
// comma ends a sub-option; ",," would be a literal comma and shows up here
// as an empty part, which is refused) and checks that the values that come
// from c are there whole, each where it belongs.
func checkOptionValues(t *testing.T, c Config, a []string) {
	t.Helper()
	got := map[string][]string{} // "option key" -> values, in order
	for i := 1; i < len(a)-1; i++ {
		types, ok := subOptions[a[i]]
		if !ok {
			continue
		}
		opt, v := a[i], a[i+1]
		i++
		parts := strings.Split(v, ",")
		typ := ""
		if _, untyped := types[""]; !untyped {
			typ, parts = parts[0], parts[1:]
		}
		if opt == "-qmp" {
			p, ok := strings.CutPrefix(typ, "unix:")
			if !ok {
				t.Fatalf("%s %q: not a unix socket", opt, v)
			}
			typ = "unix:"
			got["-qmp path"] = append(got["-qmp path"], p)
		}
		keys, ok := types[typ]
		if !ok {
			t.Fatalf("%s %q: type %q is not one the builder writes", opt, v, typ)
		}
		seen := map[string]bool{}
		for _, part := range parts {
			k, val, ok := strings.Cut(part, "=")
			if !ok || !slices.Contains(keys, k) || seen[k] {
				t.Fatalf("%s %q: sub-option %q was not asked for (config %+v)", opt, v, part, c)
			}
			seen[k] = true
			got[opt+" "+typ+" "+k] = append(got[opt+" "+typ+" "+k], val)
		}
	}

	var socks, names, fsPaths, fsTags, vfsTags, vfsSocks, ro []string
	for _, p := range c.Ports {
		socks, names = append(socks, p.Socket), append(names, p.Name)
	}
	for _, s := range c.Shares {
		if s.Transport == Virtiofs {
			vfsSocks, vfsTags = append(vfsSocks, s.Socket), append(vfsTags, s.Tag)
			continue
		}
		fsPaths, fsTags = append(fsPaths, s.Path), append(fsTags, s.Tag)
		if s.ReadOnly {
			ro = append(ro, "on")
		}
	}
	var consolePath, appendOn, qmpPath, macs, tbSize []string
	if c.Console != "" {
		consolePath = []string{c.Console}
		if c.ConsoleAppend {
			appendOn = []string{"on"}
		}
	}
	if c.QMPSocket != "" {
		qmpPath = []string{c.QMPSocket}
	}
	for _, tap := range c.Taps {
		macs = append(macs, tap.MAC)
	}
	if c.Accel == TCG && c.TBSizeMiB > 0 {
		tbSize = []string{strconv.Itoa(c.TBSizeMiB)}
	}
	for key, want := range map[string][]string{
		"-chardev socket path":               append(socks, vfsSocks...),
		"-device virtserialport name":        names,
		"-fsdev local path":                  fsPaths,
		"-fsdev local readonly":              ro,
		"-device virtio-9p-device mount_tag": fsTags,
		"-device vhost-user-fs-device tag":   vfsTags,
		"-chardev file path":                 consolePath,
		"-chardev file append":               appendOn,
		"-qmp path":                          qmpPath,
		"-drive  file":                       {c.Image},
		"-device virtio-net-device mac":      macs,
		"-accel tcg tb-size":                 tbSize,
	} {
		if !slices.Equal(got[key], want) {
			t.Fatalf("%s: %q in the argv, want %q from the config\n%q", key, got[key], want, a)
		}
	}
}

// kernelWords splits a kernel command line as Linux's next_arg does:
// arguments are separated by white space (its isspace: ASCII white space
// and Latin-1's no-break space 0xa0), except inside double quotes.
func kernelWords(s string) []string {
	isSpace := func(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xa0 }
	var words []string
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return words
		}
		start, inQuote := i, false
		for ; i < len(s); i++ {
			if s[i] == '"' {
				inQuote = !inQuote
			} else if isSpace(s[i]) && !inQuote {
				break
			}
		}
		words = append(words, s[start:i])
	}
}

func checkKernelCmdline(t *testing.T, c Config, a []string) {
	t.Helper()
	i := slices.Index(a, "-append")
	if i < 0 || i+1 >= len(a) {
		t.Fatalf("no -append in %q", a)
	}
	if words := kernelWords(a[i+1]); !slices.Equal(words, c.Cmdline) {
		t.Fatalf("the kernel reads %d arguments %q from -append %q, the config has %d: %q", len(words), words, a[i+1], len(c.Cmdline), c.Cmdline)
	}
}
