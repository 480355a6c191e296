package qemu

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

func TestChooseAccel(t *testing.T) {
	normal := HostFacts{KVMUsable: true}
	pvm := HostFacts{KVMUsable: true, PVM: true}
	none := HostFacts{}
	tests := []struct {
		setting string
		host    HostFacts
		want    Accel
		notice  bool
		err     bool
	}{
		{"", normal, KVM, false, false},
		{"auto", normal, KVM, false, false},
		{"", pvm, TCG, true, false},
		{"", none, TCG, true, false},
		{"tcg", normal, TCG, false, false},
		{"kvm", pvm, KVM, false, false},
		{"kvm", none, "", false, true},
		{"xen", normal, "", false, true},
	}
	for _, tt := range tests {
		got, notice, err := ChooseAccel(tt.setting, tt.host)
		if tt.err {
			if !errors.Is(err, ErrBadAccel) {
				t.Errorf("ChooseAccel(%q, %+v): want ErrBadAccel, got %v", tt.setting, tt.host, err)
			}
			continue
		}
		if err != nil || got != tt.want || (notice != "") != tt.notice {
			t.Errorf("ChooseAccel(%q, %+v) = %q, %q, %v; want %q (notice %v)", tt.setting, tt.host, got, notice, err, tt.want, tt.notice)
		}
		if notice != "" && strings.Contains(notice, "\n") {
			t.Errorf("notice must be one line: %q", notice)
		}
	}
}

func validConfig() Config {
	return Config{
		Binary:    Bundled("/s1"),
		Accel:     TCG,
		Kernel:    "/s1/bzImage",
		Cmdline:   KernelCmdline("x.target", TCG, false),
		Image:     "/s1/guest.img",
		MemoryMiB: 128,
		CPUs:      1,
		TBSizeMiB: 16,
		Ports:     []Port{{Name: contract.EventsPort, Socket: "/pod/ev.sock"}},
		Shares:    []Share{{Tag: "pod", Path: "/pod/stage1/rootfs"}},
	}
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	c := validConfig()
	c.MemoryMiB = 10
	c.CPUs = 0
	c.Kernel = ""
	c.Ports = append(c.Ports, Port{Name: contract.EventsPort, Socket: "/a,b"})
	err := c.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("want ErrInvalidConfig, got %v", err)
	}
	for _, want := range []string{"memory", "vCPUs", "no kernel", "twice", "comma"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// A value that QEMU's option syntax or the kernel's command line would
// split must be refused, not passed on as more than the config says.
func TestValidateRefusesInjection(t *testing.T) {
	for name, change := range map[string]func(*Config){
		"share tag with a comma":     func(c *Config) { c.Shares[0].Tag = "pod,readonly=on" },
		"port name with a comma":     func(c *Config) { c.Ports[0].Name = "p,id=x" },
		"kernel argument with space": func(c *Config) { c.Cmdline = append(c.Cmdline, "systemd.hostname=a init=/bin/sh") },
		"kernel argument with tab":   func(c *Config) { c.Cmdline = append(c.Cmdline, "a\tb") },
		"empty kernel argument":      func(c *Config) { c.Cmdline = append(c.Cmdline, "") },
		"kernel argument with quote": func(c *Config) { c.Cmdline = append(c.Cmdline, `a="x`, `y"`) },
		// 0xa0 is white space to the kernel, and the last byte of "à".
		"kernel argument not ASCII": func(c *Config) { c.Cmdline = append(c.Cmdline, "systemd.hostname=caf\u00e0") },
	} {
		c := validConfig()
		change(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidConfig", name, err)
		}
	}
	c := validConfig()
	c.Cmdline = append(c.Cmdline, contract.VirtiofsParam+"=pod,vol-0", "systemd.machine_id=0123456789abcdef")
	if err := c.Validate(); err != nil {
		t.Errorf("commas in a kernel argument are fine: %v", err)
	}
}

func TestArgvBundled(t *testing.T) {
	a := Argv(validConfig())
	if a[0] != "/s1/qemu/bin/qemu-system-x86_64" {
		t.Fatalf("the bundled QEMU is static and starts directly: %v", a[:3])
	}
	assertContainsAll(t, strings.Join(a, " "),
		"/s1/qemu/bin/qemu-system-x86_64 -L /s1/qemu/share",
		"-M microvm,acpi=off",
		"-no-reboot",
		"-accel tcg,tb-size=16 -cpu max",
		"-m 128", "-smp 1",
		"file=/s1/guest.img,format=raw,if=none,readonly=on",
		"-chardev socket,id=port0,path=/pod/ev.sock",
		"virtserialport,chardev=port0,name="+contract.EventsPort,
		"path=/pod/stage1/rootfs,security_model=passthrough,multidevs=remap",
		"mount_tag=pod",
		"-serial null",
	)
	i := slices.Index(a, "-append")
	if i < 0 || !strings.Contains(a[i+1], "init="+contract.GuestProgram) || !strings.Contains(a[i+1], "systemd.unit=x.target") {
		t.Errorf("bad -append: %v", a)
	}
}

func TestArgvQMP(t *testing.T) {
	c := validConfig()
	if slices.Contains(Argv(c), "-qmp") {
		t.Errorf("QMP without a socket: %v", Argv(c))
	}
	c.QMPSocket = "/pod/vm/qmp.sock"
	assertContainsAll(t, strings.Join(Argv(c), " "), "-qmp unix:/pod/vm/qmp.sock,server=on,wait=off")
	c.QMPSocket = "/a,b"
	if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("QMP socket with a comma: err = %v, want ErrInvalidConfig", err)
	}
}

func TestArgvKVMHostQEMU(t *testing.T) {
	c := validConfig()
	c.Binary = Binary{Path: "/usr/bin/qemu-system-x86_64"}
	c.Accel = KVM
	c.Console = "/pod/console.log"
	a := Argv(c)
	joined := strings.Join(a, " ")
	if a[0] != "/usr/bin/qemu-system-x86_64" || strings.Contains(joined, " -L ") {
		t.Errorf("host QEMU runs directly: %v", a[:3])
	}
	if !strings.Contains(joined, "-accel kvm -cpu host") || strings.Contains(joined, "tb-size") {
		t.Errorf("KVM argv wrong: %s", joined)
	}
	if !strings.Contains(joined, "-chardev file,id=console,path=/pod/console.log -serial chardev:console") {
		t.Errorf("console not in argv: %s", joined)
	}
}

func TestKernelCmdlineDebug(t *testing.T) {
	if slices.Contains(KernelCmdline("a.target", KVM, true), "quiet") {
		t.Error("debug boot must not be quiet")
	}
	c := KernelCmdline("a.target", TCG, false, "systemd.hostname=h")
	if !slices.Contains(c, "quiet") || c[len(c)-1] != "systemd.hostname=h" {
		t.Errorf("cmdline %v", c)
	}
}

// Memory knobs that depend on how the host backs guest RAM: page-by-page
// free page reporting and percpu in pages under TCG (4 KiB host pages);
// under KVM (huge host pages) only the percpu setting.
func TestKernelCmdlineMemory(t *testing.T) {
	tcg := KernelCmdline("a.target", TCG, false)
	kvm := KernelCmdline("a.target", KVM, false)
	for _, c := range [][]string{tcg, kvm} {
		if !slices.Contains(c, "percpu_alloc=page") {
			t.Errorf("no percpu_alloc=page: %v", c)
		}
	}
	if !slices.Contains(tcg, "stage1_page_reporting_order=0") {
		t.Errorf("TCG: no page-by-page reporting: %v", tcg)
	}
	if slices.ContainsFunc(kvm, func(a string) bool { return strings.HasPrefix(a, "stage1_page_reporting_order=") }) {
		t.Errorf("KVM: page reporting order changed: %v", kvm)
	}
}

func TestArgvTaps(t *testing.T) {
	c := validConfig()
	f0, f1 := os.NewFile(100, "tap0"), os.NewFile(101, "tap1")
	c.Taps = []Tap{{File: f0, MAC: "02:00:00:00:00:01"}, {File: f1, MAC: "02:00:00:00:00:02"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(Argv(c), " ")
	assertContainsAll(t, joined,
		"-netdev tap,id=net0,fd=3 -device virtio-net-device,netdev=net0,mac=02:00:00:00:00:01",
		"-netdev tap,id=net1,fd=4 -device virtio-net-device,netdev=net1,mac=02:00:00:00:00:02",
	)
	if strings.Contains(joined, "vhost") {
		t.Errorf("no vhost on these hosts: %s", joined)
	}
	c.Taps = []Tap{{MAC: "nope"}}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "no file") || !strings.Contains(err.Error(), "bad MAC") {
		t.Errorf("bad taps accepted: %v", err)
	}
}

func TestArgvVirtiofs(t *testing.T) {
	c := validConfig()
	c.Accel = KVM
	if strings.Contains(strings.Join(Argv(c), " "), "memory-backend") {
		t.Error("a 9p-only VM under KVM keeps anonymous RAM (huge pages)")
	}
	c.Accel = TCG
	if joined := strings.Join(Argv(c), " "); !strings.Contains(joined, "memory-backend-memfd") || strings.Contains(joined, "force-legacy") {
		t.Errorf("under TCG guest RAM is a memfd, virtio-mmio stays legacy: %s", joined)
	}
	c.Shares = append(c.Shares,
		Share{Tag: "vol-0", Path: "/data", Transport: Virtiofs, Socket: "/pod/vm/virtiofs1.sock"},
		Share{Tag: "vol-1", Path: "/ro", ReadOnly: true})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(Argv(c), " ")
	assertContainsAll(t, joined,
		"-m 128 -smp 1 -object memory-backend-memfd,id=ram,share=on,size=128M -machine memory-backend=ram -global virtio-mmio.force-legacy=false",
		"-chardev socket,id=fs1,path=/pod/vm/virtiofs1.sock -device vhost-user-fs-device,chardev=fs1,tag=vol-0",
		"mount_tag=pod",
		"-fsdev local,id=fs2,path=/ro,security_model=passthrough,multidevs=remap,readonly=on",
	)
	if strings.Contains(joined, "path=/data,security_model") {
		t.Errorf("virtiofs share also exported over 9p:\n%s", joined)
	}

	bad := validConfig()
	bad.Shares = []Share{
		{Tag: "a", Path: "/a", Transport: Virtiofs},
		{Tag: "b", Path: "/b", Transport: Virtiofs, Socket: "/s", ReadOnly: true},
		{Tag: "c", Path: "/c", Transport: "nfs"},
	}
	err := bad.Validate()
	for _, want := range []string{`"a" needs a socket`, `"b" cannot be read-only`, `unknown transport "nfs"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func TestVirtioFSDArgv(t *testing.T) {
	got := strings.Join(VirtioFSDArgv(Bundled("/s1"), "/pod/stage1/rootfs", 3), " ")
	want := "/s1/qemu/lib/ld-linux-x86-64.so.2 --library-path /s1/qemu/lib --argv0 virtiofsd /s1/qemu/bin/virtiofsd --fd=3 -o source=/pod/stage1/rootfs -o cache=auto -o modcaps=-mknod:-setfcap"
	if got != want {
		t.Errorf("VirtioFSDArgv =\n%s\nwant\n%s", got, want)
	}
}

func TestBinaryEnv(t *testing.T) {
	env := Bundled("/s1").Env()
	for _, want := range []string{"MALLOC_MMAP_THRESHOLD_=131072", "MALLOC_ARENA_MAX=1"} {
		if !slices.Contains(env, want) {
			t.Errorf("bundled QEMU env %q lacks %q", env, want)
		}
	}
}

// assertContainsAll reports each of wants that the QEMU command line
// joined lacks.
func assertContainsAll(t *testing.T, joined string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(joined, want) {
			t.Errorf("argv lacks %q:\n%s", want, joined)
		}
	}
}

// Under TCG the guest's tick is the local APIC timer and its clock the
// TSC, both rates given (no calibration against the PIT, whose short
// counter keeps an idle guest waking and which fails on a busy host);
// under KVM the TSC-deadline timer and kvmclock need neither.
func TestKernelCmdlineTimer(t *testing.T) {
	for _, accel := range []Accel{TCG, KVM} {
		if c := KernelCmdline("a.target", accel, false); !slices.Contains(c, "sysctl.vm.compaction_proactiveness=0") {
			t.Errorf("%v: proactive compaction would wake an idle guest: %v", accel, c)
		}
	}
	tcg := KernelCmdline("a.target", TCG, false)
	if !slices.Contains(tcg, "lapic_bus_hz=1000000000") || slices.Contains(tcg, "noapictimer") {
		t.Errorf("TCG: want the APIC timer at QEMU's 1 GHz bus: %v", tcg)
	}
	kvm := KernelCmdline("a.target", KVM, false)
	if slices.ContainsFunc(kvm, func(a string) bool {
		return strings.HasPrefix(a, "lapic_bus_hz=") || a == "noapictimer"
	}) {
		t.Errorf("KVM: timer arguments: %v", kvm)
	}
}

// Our QEMU's TSC under TCG runs at the virtual clock's 1 GHz, which the
// kernel is told (and need not watch); another QEMU's runs at the host's
// rate, and under KVM the kernel has kvmclock: no TSC arguments then.
func TestTSCArgs(t *testing.T) {
	ours := Binary{Path: "/q", Bundled: true}
	if got, want := TSCArgs(TCG, ours), []string{"tsc_early_khz=1000000", "tsc=reliable"}; !slices.Equal(got, want) {
		t.Errorf("TCG, bundled QEMU: %v, want %v", got, want)
	}
	if got := TSCArgs(TCG, Binary{Path: "/usr/bin/qemu-system-x86_64"}); got != nil {
		t.Errorf("TCG, host QEMU: %v", got)
	}
	if got := TSCArgs(KVM, ours); got != nil {
		t.Errorf("KVM: %v", got)
	}
}
