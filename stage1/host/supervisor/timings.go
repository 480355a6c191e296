package supervisor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// TimingsFile, in the pod's vm/ directory, records where a pod's start went
// (read by `make bench`). All values are milliseconds since run started.
const TimingsFile = "timings.json"

// Timings is the content of TimingsFile.
type Timings struct {
	// HostSetupMs: run started -> QEMU spawned.
	HostSetupMs float64 `json:"host_setup_ms"`
	// NetworkSetupMs: the network step alone (part of HostSetupMs): the
	// namespace, every CNI ADD, the taps and their tc redirects, the
	// guest's and rkt's files (only these with --net=none).
	NetworkSetupMs float64 `json:"network_setup_ms"`
	// StartedFrom is how the VM started: "template" (a clone of one),
	// "new-template" (after making it) or "cold".
	StartedFrom string `json:"started_from,omitempty"`
	// TemplateMakeMs: making the template (0 if there was one);
	// RestoreMs: QEMU spawned -> a clone's state loaded. (For a clone,
	// the guest-clock figures below include the template's own boot.)
	TemplateMakeMs float64 `json:"template_make_ms,omitempty"`
	RestoreMs      float64 `json:"restore_ms,omitempty"`
	// TemplateCheckMs: finding the template and checking its files (part
	// of HostSetupMs).
	TemplateCheckMs float64 `json:"template_check_ms,omitempty"`
	// TranslationsMs: loading the template's translated code into the
	// clone's QEMU (part of RestoreMs; 0 if it had none to load, or QEMU
	// refused it).
	TranslationsMs float64 `json:"translations_ms,omitempty"`
	// QEMUToKernelMs: QEMU spawned -> guest kernel started (QEMU's own
	// start and firmware), derived from the guest's clock at ready.
	QEMUToKernelMs float64 `json:"qemu_to_kernel_ms"`
	// KernelMs: guest kernel start -> our pre-init (guest clock).
	KernelMs float64 `json:"kernel_ms"`
	// SystemdToReadyMs: pre-init -> apps started (guest clock).
	SystemdToReadyMs float64 `json:"systemd_to_ready_ms"`
	// ReadyMs: run started -> the guest reported the apps started.
	ReadyMs float64 `json:"ready_ms"`
	// FirstOutputMs: run started -> first byte of any app's stdout.
	FirstOutputMs float64 `json:"first_output_ms,omitempty"`
	// LastOutputMs: run started -> last byte of the apps' stdout.
	LastOutputMs float64 `json:"last_output_ms,omitempty"`

	// The pod's end, for the time from the apps' exit to run's:
	// AppsExitedMs: the last app's exit reported; OutputEndMs: the guest
	// said the output had all been written; EndedMs: the guest said
	// everything was on the host; VMExitMs: QEMU was seen gone;
	// LoopEndMs: the streams drained, run's teardown about to start.
	AppsExitedMs float64 `json:"apps_exited_ms,omitempty"`
	OutputEndMs  float64 `json:"output_end_ms,omitempty"`
	EndedMs      float64 `json:"ended_ms,omitempty"`
	VMExitMs     float64 `json:"vm_exit_ms,omitempty"`
	LoopEndMs    float64 `json:"loop_end_ms,omitempty"`
}

// The stages of a pod's end that the timer notes.
const (
	endAppsExited = "apps_exited"
	endOutput     = "output_end"
	endEnded      = "ended"
	endVMExit     = "vm_exit"
	endLoop       = "loop_end"
)

type timer struct {
	mu     sync.Mutex
	start  time.Time
	qemu   time.Time
	ready  time.Time
	output time.Time
	last   time.Time
	netDur time.Duration
	// How the VM started (Timings.StartedFrom, TemplateMakeMs, RestoreMs).
	from                    string
	makeDur, restore, check time.Duration
	translations            time.Duration
	// The end: see Timings; each the time of its first mark.
	ends   map[string]time.Time
	guestK int64
	guestT int64
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (t *timer) markQEMU() { t.mu.Lock(); t.qemu = time.Now(); t.mu.Unlock() }

// markEnd notes the first time the pod's end reached stage (a Timings
// JSON name of the end's fields).
func (t *timer) markEnd(stage string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ends == nil {
		t.ends = map[string]time.Time{}
	}
	if _, ok := t.ends[stage]; !ok {
		t.ends[stage] = time.Now()
	}
}

func (t *timer) markNetwork(d time.Duration) { t.mu.Lock(); t.netDur = d; t.mu.Unlock() }

func (t *timer) markTranslations(d time.Duration) { t.mu.Lock(); t.translations = d; t.mu.Unlock() }

// markStart notes how the VM started.
func (t *timer) markStart(from string, check, makeDur, restore time.Duration) {
	t.mu.Lock()
	t.from, t.check, t.makeDur, t.restore = from, check, makeDur, restore
	t.mu.Unlock()
}

func (t *timer) markReady(kernelMs, totalMs int64) {
	t.mu.Lock()
	t.ready, t.guestK, t.guestT = time.Now(), kernelMs, totalMs
	t.mu.Unlock()
}

// outputTimes wraps w to note when the first and the last bytes go through.
func (t *timer) outputTimes(w interface{ Write([]byte) (int, error) }) *outputTimer {
	return &outputTimer{t: t, w: w}
}

type outputTimer struct {
	t *timer
	w interface{ Write([]byte) (int, error) }
}

func (o *outputTimer) Write(p []byte) (int, error) {
	now := time.Now()
	o.t.mu.Lock()
	if o.t.output.IsZero() {
		o.t.output = now
	}
	o.t.last = now
	o.t.mu.Unlock()
	return o.w.Write(p)
}

func (t *timer) result() Timings {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := Timings{NetworkSetupMs: ms(t.netDur), StartedFrom: t.from, TemplateMakeMs: ms(t.makeDur), RestoreMs: ms(t.restore), TemplateCheckMs: ms(t.check), TranslationsMs: ms(t.translations)}
	if !t.qemu.IsZero() {
		r.HostSetupMs = ms(t.qemu.Sub(t.start))
	}
	if !t.ready.IsZero() {
		r.ReadyMs = ms(t.ready.Sub(t.start))
		r.KernelMs = float64(t.guestK)
		r.SystemdToReadyMs = float64(t.guestT - t.guestK)
		if t.guestT > 0 && t.from == "cold" {
			r.QEMUToKernelMs = ms(t.ready.Sub(t.qemu)) - float64(t.guestT)
		}
	}
	if !t.output.IsZero() {
		r.FirstOutputMs = ms(t.output.Sub(t.start))
		r.LastOutputMs = ms(t.last.Sub(t.start))
	}
	for stage, f := range map[string]*float64{
		endAppsExited: &r.AppsExitedMs, endOutput: &r.OutputEndMs, endEnded: &r.EndedMs,
		endVMExit: &r.VMExitMs, endLoop: &r.LoopEndMs,
	} {
		if at, ok := t.ends[stage]; ok {
			*f = ms(at.Sub(t.start))
		}
	}
	return r
}

func (t *timer) write(dir string) {
	b, err := json.MarshalIndent(t.result(), "", "  ")
	if err != nil {
		return
	}
	os.WriteFile(filepath.Join(dir, TimingsFile), append(b, '\n'), 0o644)
}
