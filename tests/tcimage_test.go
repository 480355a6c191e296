package tests

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/stage1-kvm/stage1-kvm/tests/harness"
)

// tcProbeBIOS is a 64 KiB firmware image for a bare x86 guest, made to
// test our QEMU's translation cache image (qemu/patches/0014) without a
// kernel in the way. In real mode it writes a routine to guest RAM at
// 0x2000 (mov al,'A'; retf), runs it and sends AL to the serial port,
// then waits for a byte on the serial port. That is where the template
// is saved. After the byte (sent to a clone only) it changes the
// routine's immediate to 'B' before running it again (the page's first
// write since the clone was restored: the image's block for it must not
// be used), then to 'C' (a write to a page whose block runs), sending AL
// each time, and halts. A clone that is right says "BC".
func tcProbeBIOS() []byte {
	code := []byte{
		0xFA,       // cli
		0x31, 0xC0, // xor ax, ax
		0x8E, 0xD8, // mov ds, ax
		0x8E, 0xD0, // mov ss, ax
		0xBC, 0x00, 0x70, // mov sp, 0x7000
		0xC7, 0x06, 0x00, 0x20, 0xB0, 0x41, // mov word [0x2000], 0x41B0 (mov al,'A')
		0xC6, 0x06, 0x02, 0x20, 0xCB, // mov byte [0x2002], 0xCB (retf)
		0x9A, 0x00, 0x20, 0x00, 0x00, // call 0000:2000
		0xBA, 0xF8, 0x03, // mov dx, 0x3F8
		0xEE,             // out dx, al
		0xBA, 0xFD, 0x03, // mov dx, 0x3FD (line status)
		0xEC,       // wait: in al, dx
		0xA8, 0x01, // test al, 1 (data ready)
		0x74, 0xFB, // jz wait
		0xBA, 0xF8, 0x03, // mov dx, 0x3F8
		0xEC,                         // in al, dx (take the byte)
		0xC6, 0x06, 0x01, 0x20, 0x42, // mov byte [0x2001], 'B'
		0x9A, 0x00, 0x20, 0x00, 0x00, // call 0000:2000
		0xEE,                         // out dx, al
		0xC6, 0x06, 0x01, 0x20, 0x43, // mov byte [0x2001], 'C'
		0x9A, 0x00, 0x20, 0x00, 0x00, // call 0000:2000
		0xEE,       // out dx, al
		0xF4,       // halt: hlt
		0xEB, 0xFD, // jmp halt
	}
	rom := make([]byte, 64<<10)
	copy(rom, code)
	// The reset vector (F000:FFF0): jmp far F000:0000.
	copy(rom[0xFFF0:], []byte{0xEA, 0x00, 0x00, 0x00, 0xF0})
	return rom
}

// tcProbeVM is one QEMU of the probe: its serial port and its QMP.
type tcProbeVM struct {
	cmd    *exec.Cmd
	serial net.Conn
	qmp    *qmp.SocketMonitor
}

// startTCProbe starts our QEMU on the probe firmware with guest RAM in
// ramFile (shared to make a template, copy-on-write for a clone), and
// connects to its serial port and QMP.
func startTCProbe(t *testing.T, dir, name, ramFile string, clone bool) *tcProbeVM {
	t.Helper()
	bios := filepath.Join(dir, "probe.bin")
	if _, err := os.Stat(bios); err != nil {
		if err := os.WriteFile(bios, tcProbeBIOS(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ser, qmpSock := filepath.Join(dir, name+".serial"), filepath.Join(dir, name+".qmp")
	ram := "memory-backend-file,id=ram,size=16M,mem-path=" + ramFile + ",share=on"
	args := []string{
		"-M", "microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-bios", bios, "-m", "16", "-smp", "1", "-accel", "tcg,tb-size=64", "-cpu", "max",
		"-chardev", "socket,id=ser,path=" + ser + ",server=on,wait=on",
		"-serial", "chardev:ser",
		"-qmp", "unix:" + qmpSock + ",server=on,wait=off",
	}
	if clone {
		ram = "memory-backend-file,id=ram,size=16M,mem-path=" + ramFile + ",share=off,x-cow=on"
		args = append(args, "-incoming", "defer", "-S")
	}
	args = append(args, "-object", ram, "-machine", "memory-backend=ram")
	cmd := exec.Command(filepath.Join(harness.BuildDir(t), "qemu", "qemu-system-x86_64"), args...)
	// QEMU's messages, shown if the test fails.
	stderr, err := os.Create(filepath.Join(dir, name+".stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	vm := &tcProbeVM{cmd: cmd}
	t.Cleanup(func() {
		if vm.qmp != nil {
			vm.qmp.Disconnect()
		}
		if vm.serial != nil {
			vm.serial.Close()
		}
		cmd.Process.Kill()
		cmd.Wait()
		if err := syscall.Kill(cmd.Process.Pid, 0); err == nil {
			t.Errorf("qemu %d outlived its test", cmd.Process.Pid)
		}
		if b, _ := os.ReadFile(stderr.Name()); t.Failed() && len(b) > 0 {
			t.Logf("%s: qemu's stderr:\n%s", name, b)
		}
	})
	// QEMU waits for the serial port's client before it runs anything.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if vm.serial, err = net.Dial("unix", ser); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: serial port: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		if vm.qmp, err = qmp.NewSocketMonitor("unix", qmpSock, 5*time.Second); err == nil {
			if err = vm.qmp.Connect(); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: qmp: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return vm
}

// run runs a QMP command (with f as its file, if not nil) and returns
// its reply's "return".
func (vm *tcProbeVM) run(t *testing.T, cmd string, f *os.File) json.RawMessage {
	t.Helper()
	var reply []byte
	var err error
	if f != nil {
		reply, err = vm.qmp.RunWithFile([]byte(cmd), f)
	} else {
		reply, err = vm.qmp.Run([]byte(cmd))
	}
	if err != nil {
		t.Fatalf("qmp %s: %v", cmd, err)
	}
	var r struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatalf("qmp %s: %s: %v", cmd, reply, err)
	}
	return r.Return
}

// read reads n bytes from the serial port, within a bound.
func (vm *tcProbeVM) read(t *testing.T, n int) string {
	t.Helper()
	vm.serial.SetReadDeadline(time.Now().Add(30 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(vm.serial, b); err != nil {
		t.Fatalf("serial: read %q, then %v", b, err)
	}
	return string(b)
}

// waitStatus polls query until its reply's field says want.
func (vm *tcProbeVM) waitStatus(t *testing.T, query, field, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var r map[string]any
		json.Unmarshal(vm.run(t, query, nil), &r)
		if r[field] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, not %s", query, r, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// jitStat is a number x-query-jit prints, by its label.
func (vm *tcProbeVM) jitStat(t *testing.T, label string) int {
	t.Helper()
	var text struct {
		HumanReadableText string `json:"human-readable-text"`
	}
	json.Unmarshal(vm.run(t, `{"execute":"x-query-jit"}`, nil), &text)
	return jitNumber(t, text.HumanReadableText, label)
}

// A clone runs its template's translations only where its guest code is
// still what it was: a write to a code page before the clone ever ran
// it, by the guest, makes the clone translate it anew.
func TestTranslationImageStale(t *testing.T) {
	dir := t.TempDir()
	ramFile := filepath.Join(dir, "ram")
	open := func(name string, flag int) *os.File {
		f, err := os.OpenFile(filepath.Join(dir, name), flag, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	tpl := startTCProbe(t, dir, "template", ramFile, false)
	if got := tpl.read(t, 1); got != "A" {
		t.Fatalf("template: %q, want A", got)
	}
	tpl.run(t, `{"execute":"stop"}`, nil)
	tpl.run(t, `{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-ignore-shared","state":true}]}}`, nil)
	state := open("state", os.O_RDWR|os.O_CREATE)
	tpl.run(t, `{"execute":"getfd","arguments":{"fdname":"state"}}`, state)
	tpl.run(t, `{"execute":"migrate","arguments":{"uri":"fd:state"}}`, nil)
	tpl.waitStatus(t, `{"execute":"query-migrate"}`, "status", "completed")
	image := open("image", os.O_RDWR|os.O_CREATE)
	tpl.run(t, `{"execute":"getfd","arguments":{"fdname":"image"}}`, image)
	tpl.run(t, `{"execute":"x-tcg-cache-save","arguments":{"fdname":"image"}}`, nil)
	state.Close()
	image.Close()

	clone := startTCProbe(t, dir, "clone", ramFile, true)
	clone.run(t, `{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-ignore-shared","state":true}]}}`, nil)
	state = open("state", os.O_RDONLY)
	clone.run(t, `{"execute":"getfd","arguments":{"fdname":"state"}}`, state)
	clone.run(t, `{"execute":"migrate-incoming","arguments":{"uri":"fd:state"}}`, nil)
	clone.waitStatus(t, `{"execute":"query-status"}`, "status", "paused")
	image = open("image", os.O_RDONLY)
	clone.run(t, `{"execute":"getfd","arguments":{"fdname":"image"}}`, image)
	clone.run(t, `{"execute":"x-tcg-cache-load","arguments":{"fdname":"image"}}`, nil)
	clone.run(t, `{"execute":"cont"}`, nil)
	if _, err := clone.serial.Write([]byte{'g'}); err != nil {
		t.Fatal(err)
	}
	got := clone.read(t, 2)
	taken, written := clone.jitStat(t, "taken"), clone.jitStat(t, "pages written")
	t.Logf("clone: %q; blocks taken from the image %d, its pages written %d", got, taken, written)
	if got != "BC" {
		t.Errorf("clone ran %q, want \"BC\" (an \"A\" is the template's code for a page the clone changed)", got)
	}
	// The wait loop the template was saved in came from the image.
	if taken == 0 || written == 0 {
		t.Errorf("the image served %d blocks and saw %d pages written; want both above 0", taken, written)
	}
}
