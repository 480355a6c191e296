package sizing

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/appc/spec/schema/types"
)

// iso builds an isolator the way a manifest does, from JSON.
func iso(t *testing.T, name, value string) types.Isolator {
	t.Helper()
	var i types.Isolator
	doc := `{"name":"` + name + `","value":` + value + `}`
	if err := json.Unmarshal([]byte(doc), &i); err != nil {
		t.Fatalf("isolator %s: %v", doc, err)
	}
	return i
}

func mem(t *testing.T, limit string) types.Isolator {
	return iso(t, "resource/memory", `{"limit":"`+limit+`"}`)
}

func cpu(t *testing.T, limit string) types.Isolator {
	return iso(t, "resource/cpu", `{"limit":"`+limit+`"}`)
}

func app(isos ...types.Isolator) types.App {
	return types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0", Isolators: isos}
}

func TestVMSize(t *testing.T) {
	tests := []struct {
		name     string
		apps     func(t *testing.T) []types.App
		hostCPUs int
		want     Size
	}{
		{"no apps", func(t *testing.T) []types.App { return nil }, 4,
			Size{MemoryMiB: 96, CPUs: 1}},
		{"one app without limits", func(t *testing.T) []types.App { return []types.App{app()} }, 4,
			Size{MemoryMiB: 96 + 64, CPUs: 1}},
		{"two apps without limits", func(t *testing.T) []types.App { return []types.App{app(), app()} }, 4,
			Size{MemoryMiB: 96 + 2*64, CPUs: 1}},
		{"memory limit in binary units", func(t *testing.T) []types.App {
			return []types.App{app(mem(t, "256Mi"))}
		}, 4, Size{MemoryMiB: 96 + 256, CPUs: 1}},
		{"memory limit in decimal units rounds up to 2 MiB", func(t *testing.T) []types.App {
			// 500M = 476.8 MiB: 96 + 476.8 = 572.8, rounded up to 574.
			return []types.App{app(mem(t, "500M"))}
		}, 4, Size{MemoryMiB: 574, CPUs: 1}},
		{"one byte over rounds up", func(t *testing.T) []types.App {
			return []types.App{app(mem(t, "1048577"))}
		}, 4, Size{MemoryMiB: 96 + 2, CPUs: 1}},
		{"duplicated memory isolator: last wins", func(t *testing.T) []types.App {
			return []types.App{app(mem(t, "1Gi"), mem(t, "128Mi"))}
		}, 4, Size{MemoryMiB: 96 + 128, CPUs: 1}},
		{"mixed apps", func(t *testing.T) []types.App {
			return []types.App{app(mem(t, "128Mi"), cpu(t, "1")), app(cpu(t, "500m"))}
		}, 4, Size{MemoryMiB: 96 + 128 + 64, CPUs: 2}},
		{"millicores add up", func(t *testing.T) []types.App {
			return []types.App{app(cpu(t, "250m")), app(cpu(t, "250m")), app(cpu(t, "500m"))}
		}, 4, Size{MemoryMiB: 96 + 3*64, CPUs: 1}},
		{"millicores just over a core", func(t *testing.T) []types.App {
			return []types.App{app(cpu(t, "1001m"))}
		}, 4, Size{MemoryMiB: 96 + 64, CPUs: 2}},
		{"fractional cores", func(t *testing.T) []types.App {
			return []types.App{app(cpu(t, "1.5"))}
		}, 4, Size{MemoryMiB: 96 + 64, CPUs: 2}},
		{"duplicated cpu isolator: last wins", func(t *testing.T) []types.App {
			return []types.App{app(cpu(t, "3"), cpu(t, "1"))}
		}, 4, Size{MemoryMiB: 96 + 64, CPUs: 1}},
		{"cpus capped at host", func(t *testing.T) []types.App {
			return []types.App{app(cpu(t, "3")), app(cpu(t, "2"))}
		}, 4, Size{MemoryMiB: 96 + 2*64, CPUs: 4}},
		{"huge cpu capped", func(t *testing.T) []types.App {
			return []types.App{app(cpu(t, "1E")), app(cpu(t, "9999999999999999999999"))}
		}, 2, Size{MemoryMiB: 96 + 2*64, CPUs: 2}},
		{"last isolator without limit removes the limit", func(t *testing.T) []types.App {
			return []types.App{app(mem(t, "1Gi"), iso(t, "resource/memory", `{"request":"1Mi"}`))}
		}, 4, Size{MemoryMiB: 96 + 64, CPUs: 1}},
		{"other isolators are not sizing's business", func(t *testing.T) []types.App {
			return []types.App{app(iso(t, "os/linux/no-new-privileges", `true`))}
		}, 4, Size{MemoryMiB: 96 + 64, CPUs: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VMSize(tt.apps(t), tt.hostCPUs)
			if err != nil {
				t.Fatalf("VMSize: %v", err)
			}
			if got != tt.want {
				t.Errorf("VMSize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestVMSizeErrors(t *testing.T) {
	raw := func(s string) *json.RawMessage { m := json.RawMessage(s); return &m }
	tests := []struct {
		name     string
		apps     func(t *testing.T) []types.App
		hostCPUs int
		want     error
	}{
		{"zero memory", func(t *testing.T) []types.App { return []types.App{app(mem(t, "0"))} }, 4, ErrInvalidLimit},
		{"negative memory", func(t *testing.T) []types.App { return []types.App{app(mem(t, "-1Gi"))} }, 4, ErrInvalidLimit},
		{"zero cpu", func(t *testing.T) []types.App { return []types.App{app(cpu(t, "0"))} }, 4, ErrInvalidLimit},
		{"negative cpu", func(t *testing.T) []types.App { return []types.App{app(cpu(t, "-500m"))} }, 4, ErrInvalidLimit},
		{"memory beyond any machine", func(t *testing.T) []types.App { return []types.App{app(mem(t, "2Ei"))} }, 4, ErrInvalidLimit},
		{"memory total too large", func(t *testing.T) []types.App {
			return []types.App{app(mem(t, "1000Gi")), app(mem(t, "100Gi"))}
		}, 4, ErrTooLarge},
		{"malformed raw value", func(t *testing.T) []types.App {
			return []types.App{app(types.Isolator{Name: "resource/memory", ValueRaw: raw(`{"limit":"lots"}`)})}
		}, 4, ErrInvalidLimit},
		{"null raw value", func(t *testing.T) []types.App {
			return []types.App{app(types.Isolator{Name: "resource/cpu", ValueRaw: raw(`null`)})}
		}, 4, ErrInvalidLimit},
		{"no value at all", func(t *testing.T) []types.App {
			return []types.App{app(types.Isolator{Name: "resource/cpu"})}
		}, 4, ErrInvalidLimit},
		{"default true is invalid for cpu", func(t *testing.T) []types.App {
			return []types.App{app(types.Isolator{Name: "resource/cpu", ValueRaw: raw(`{"default":true,"limit":"1"}`)})}
		}, 4, ErrInvalidLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VMSize(tt.apps(t), tt.hostCPUs)
			if !errors.Is(err, tt.want) {
				t.Fatalf("VMSize error = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := VMSize(nil, 0); err == nil {
		t.Error("VMSize with 0 host CPUs: no error")
	}
}

// An isolator built with appc's own constructor carries its limit only in
// the raw JSON; the limit must still be seen.
func TestLimitsFromConstructedIsolators(t *testing.T) {
	m, err := types.NewResourceMemoryIsolator("1Mi", "300Mi")
	if err != nil {
		t.Fatal(err)
	}
	c, err := types.NewResourceCPUIsolator("100m", "1500m")
	if err != nil {
		t.Fatal(err)
	}
	a := app(m.AsIsolator(), c.AsIsolator())
	b, ok, err := MemoryLimit(a)
	if err != nil || !ok || b != 300<<20 {
		t.Errorf("MemoryLimit = %d, %v, %v; want %d", b, ok, err, 300<<20)
	}
	milli, ok, err := CPULimitMilli(a)
	if err != nil || !ok || milli != 1500 {
		t.Errorf("CPULimitMilli = %d, %v, %v; want 1500", milli, ok, err)
	}
	if _, ok, err := MemoryLimit(app()); ok || err != nil {
		t.Errorf("MemoryLimit of an app without isolators: ok=%v err=%v", ok, err)
	}
}

func TestCPULimitMilliRoundsUp(t *testing.T) {
	for limit, want := range map[string]int64{"1": 1000, "500m": 500, "0.0001": 1, "2.5": 2500, "1E": MaxCPUMilli, "10000": MaxCPUMilli, "9999": 9999000} {
		got, ok, err := CPULimitMilli(app(cpu(t, limit)))
		if err != nil || !ok || got != want {
			t.Errorf("CPULimitMilli(%s) = %d, %v, %v; want %d", limit, got, ok, err, want)
		}
	}
}
