package jailplan

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/translate/qemu"
)

const pod = "/var/lib/rkt/pods/run/u"

// podConfig is a pod's VM as the run entry point describes it.
func podConfig(accel qemu.Accel) qemu.Config {
	s1 := pod + "/stage1/rootfs"
	tap, _ := os.Open(os.DevNull)
	return qemu.Config{
		Binary:    qemu.Bundled(s1),
		Accel:     accel,
		Kernel:    s1 + "/bzImage",
		Image:     s1 + "/guest.img",
		Cmdline:   qemu.KernelCmdline("pod.target", accel, false),
		MemoryMiB: 128, CPUs: 1,
		Console: pod + "/vm/console.log",
		Ports: []qemu.Port{
			{Name: "org.stage1-kvm.events", Socket: pod + "/vm/events.sock"},
			{Name: "org.stage1-kvm.stdout", Socket: pod + "/vm/stdout.sock"},
		},
		Shares: []qemu.Share{
			{Tag: "config", Path: pod + "/vm/config", ReadOnly: true},
			{Tag: "app-0", Path: s1 + "/opt/stage2/app/rootfs"},
			{Tag: "vol-0", Path: "/srv/data", Transport: qemu.Virtiofs, Socket: pod + "/vm/virtiofs2.sock"},
		},
		Taps:      []qemu.Tap{{File: tap, MAC: "02:00:00:00:00:01"}},
		QMPSocket: pod + "/vm/qmp.sock",
		Name:      pod,
	}
}

func mountAt(p Plan, target string) (Mount, bool) {
	for _, m := range p.Mounts {
		if m.Target == target {
			return m, true
		}
	}
	return Mount{}, false
}

func TestForQEMU(t *testing.T) {
	c := podConfig(qemu.TCG)
	c.Cgroup = "/sys/fs/cgroup/memory/stage1-kvm-u"
	p, j, err := ForQEMU(c, pod+"/vm/jail")
	if err != nil {
		t.Fatal(err)
	}
	// The jailer joins the pod's memory cgroup; QEMU is not told.
	if p.Cgroup != c.Cgroup || slices.ContainsFunc(qemu.Argv(j), func(a string) bool { return strings.Contains(a, "cgroup") }) {
		t.Errorf("cgroup %q, argv %q", p.Cgroup, qemu.Argv(j))
	}
	if p.Root != pod+"/vm/jail" || !p.Proc || !p.User || p.UID != QEMUUID || p.GID != QEMUGID {
		t.Errorf("plan %+v", p)
	}
	if !slices.Equal(p.Caps, QEMUCaps) || Mask(p.Caps) != "000000000000001b" {
		t.Errorf("caps %v (%s), want CHOWN, DAC_OVERRIDE, FOWNER, FSETID", p.Caps, Mask(p.Caps))
	}
	// The taps, then QMP's socket.
	if p.Files != 2 || j.QMPFD != qemu.TapFD(1) || j.QMPSocket != "" {
		t.Errorf("files %d, QMP fd %d socket %q", p.Files, j.QMPFD, j.QMPSocket)
	}
	if !slices.Equal(p.Env, c.Binary.Env()) {
		t.Errorf("env %q", p.Env)
	}
	for _, want := range []Mount{
		{Source: c.Binary.Path, Target: "/qemu/bin/qemu-system-x86_64", ReadOnly: true, Exec: true},
		{Source: c.Binary.DataDir, Target: JailDataDir, ReadOnly: true},
		{Source: c.Kernel, Target: JailKernel, ReadOnly: true},
		{Source: c.Image, Target: JailImage, ReadOnly: true},
		{Source: "/dev/null", Target: "/dev/null", Device: true},
		{Source: "/dev/urandom", Target: "/dev/urandom", ReadOnly: true, Device: true},
		{Source: c.Console, Target: JailConsole, Create: true},
		{Source: pod + "/vm/events.sock", Target: "/vm/port0"},
		{Source: pod + "/vm/stdout.sock", Target: "/vm/port1"},
		{Source: pod + "/vm/config", Target: "/shares/0", ReadOnly: true, Recursive: true},
		{Source: pod + "/stage1/rootfs/opt/stage2/app/rootfs", Target: "/shares/1", Recursive: true},
		{Source: pod + "/vm/virtiofs2.sock", Target: "/vm/fs2"},
	} {
		if got, ok := mountAt(p, want.Target); !ok || got != want {
			t.Errorf("mount at %s: %+v, want %+v", want.Target, got, want)
		}
	}
	if len(p.Mounts) != 12 {
		t.Errorf("%d mounts, want 12: %+v", len(p.Mounts), p.Mounts)
	}
	if _, ok := mountAt(p, "/dev/kvm"); ok {
		t.Error("/dev/kvm in a TCG jail")
	}
	// Nothing of the host's directory tree is on QEMU's command line but
	// the marker; every path it names is in the jail.
	argv := qemu.Argv(j)
	for _, a := range argv {
		if strings.Contains(a, pod) && a != "guest="+pod {
			t.Errorf("argument %q names a host path", a)
		}
	}
	if argv[0] != "/qemu/bin/qemu-system-x86_64" || !slices.Contains(argv, "-sandbox") {
		t.Errorf("argv %q", argv)
	}
	if err := j.Validate(); err != nil {
		t.Errorf("the jailed config: %v", err)
	}
	// The config handed in is untouched.
	if c.Shares[1].Path != pod+"/stage1/rootfs/opt/stage2/app/rootfs" || c.Ports[0].Socket != pod+"/vm/events.sock" {
		t.Error("ForQEMU changed its input")
	}
}

func TestForQEMUKVM(t *testing.T) {
	p, _, err := ForQEMU(podConfig(qemu.KVM), "/j")
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := mountAt(p, "/dev/kvm"); !ok || m.Source != "/dev/kvm" || !m.Device || m.ReadOnly {
		t.Errorf("/dev/kvm: %+v %v", m, ok)
	}
	if !slices.Equal(p.Caps, QEMUCaps) || !p.User {
		t.Errorf("KVM changes the user or capabilities: %+v", p)
	}
}

// The console on run's stderr (--debug) is QEMU's own descriptor: it
// works in the jail as it is.
func TestForQEMUDebugConsole(t *testing.T) {
	c := podConfig(qemu.TCG)
	c.Console, c.ConsoleAppend = "/proc/self/fd/2", true
	p, j, err := ForQEMU(c, "/j")
	if err != nil {
		t.Fatal(err)
	}
	if j.Console != "/proc/self/fd/2" || !p.Proc {
		t.Errorf("console %q, proc %v", j.Console, p.Proc)
	}
	if _, ok := mountAt(p, JailConsole); ok {
		t.Error("a console file bound for a descriptor")
	}
}

// A host QEMU (STAGE1_KVM_QEMU) loads the host's libraries and firmware:
// it gets /usr and the library directories read-only, at their own paths,
// and no -sandbox (it may lack seccomp).
func TestForQEMUHostBinary(t *testing.T) {
	for _, bin := range []string{"/usr/bin/qemu-system-x86_64", "/opt/qemu/bin/qemu-system-x86_64"} {
		c := podConfig(qemu.TCG)
		c.Binary = qemu.Binary{Path: bin, Jailer: "/s1/jailer"}
		p, j, err := ForQEMU(c, "/j")
		if err != nil {
			t.Fatal(err)
		}
		if j.Binary.Path != bin || j.Binary.DataDir != "" {
			t.Errorf("jailed binary %+v", j.Binary)
		}
		if m, ok := mountAt(p, "/usr"); !ok || !m.ReadOnly || !m.Exec {
			t.Errorf("/usr: %+v %v", m, ok)
		}
		if m, ok := mountAt(p, "/lib"); !ok || !m.Symlink || !m.Optional {
			t.Errorf("/lib: %+v %v", m, ok)
		}
		_, bound := mountAt(p, bin)
		if bound == strings.HasPrefix(bin, "/usr/") {
			t.Errorf("%s bound: %v", bin, bound)
		}
		if slices.Contains(qemu.Argv(j), "-sandbox") {
			t.Error("-sandbox for a host QEMU")
		}
	}
}

func TestForQEMURefuses(t *testing.T) {
	for _, root := range []string{"", "jail"} {
		if _, _, err := ForQEMU(podConfig(qemu.TCG), root); !errors.Is(err, ErrBadPlan) {
			t.Errorf("root %q: %v, want ErrBadPlan", root, err)
		}
	}
	c := podConfig(qemu.TCG)
	c.Shares[1].Path = "relative/rootfs"
	if _, _, err := ForQEMU(c, "/j"); !errors.Is(err, ErrBadPlan) {
		t.Errorf("relative share: %v, want ErrBadPlan", err)
	}
}

// Neither plan keeps what would let an escaped process out: administering
// the system or the network, tracing other processes, loading modules, raw
// I/O, opening files by handle (past the jail), device nodes, file
// capabilities.
func TestPlansKeepNoEscapeCapability(t *testing.T) {
	forbidden := []Cap{
		2,  // CAP_DAC_READ_SEARCH: open_by_handle_at
		12, // CAP_NET_ADMIN
		16, // CAP_SYS_MODULE
		17, // CAP_SYS_RAWIO
		19, // CAP_SYS_PTRACE
		27, // CAP_MKNOD
		31, // CAP_SETFCAP
	}
	for name, caps := range map[string][]Cap{"qemu": QEMUCaps, "virtiofsd": VirtioFSDCaps} {
		for _, c := range forbidden {
			if slices.Contains(caps, c) {
				t.Errorf("%s keeps %v", name, c)
			}
		}
	}
	if slices.Contains(QEMUCaps, CapSysAdmin) {
		t.Error("QEMU keeps CAP_SYS_ADMIN")
	}
	if p := ForVirtioFSD(); p.Root != "" || p.User || p.Files != 1 {
		t.Errorf("virtiofsd plan %+v", p)
	}
}

func TestCapNames(t *testing.T) {
	if CapDacOverride.String() != "CAP_DAC_OVERRIDE" || Cap(40).String() != "cap40" {
		t.Error(CapDacOverride, Cap(40))
	}
}

// A template's RAM file is in the jail: writable only for the QEMU that
// makes the template, read-only for every clone, and at the same place in
// both (the clone's command line is the template's).
func TestForQEMUTemplateRAM(t *testing.T) {
	for _, shared := range []bool{true, false} {
		c := podConfig(qemu.TCG)
		c.RAMFile, c.RAMShared = "/var/lib/stage1-kvm/templates/k/ram", shared
		p, j, err := ForQEMU(c, "/j")
		if err != nil {
			t.Fatal(err)
		}
		m, ok := mountAt(p, JailRAM)
		if !ok || m.Source != c.RAMFile || m.ReadOnly == shared || m.Exec || m.Device {
			t.Errorf("shared=%v: RAM mount %+v %v", shared, m, ok)
		}
		if j.RAMFile != JailRAM || j.RAMShared != shared {
			t.Errorf("shared=%v: QEMU sees RAM file %q", shared, j.RAMFile)
		}
	}
	c := podConfig(qemu.TCG)
	c.RAMFile = "ram"
	if _, _, err := ForQEMU(c, "/j"); err == nil {
		t.Error("a relative RAM file path was taken")
	}
}
