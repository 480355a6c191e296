// Package sizing turns a pod's resource isolators into the size of the VM
// that runs it, and gives the rest of stage1 one reading of those isolators
// (the per-app limits that the guest's units enforce).
package sizing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/appc/spec/schema/types"
	"github.com/appc/spec/schema/types/resource"
)

// ErrInvalidLimit reports a resource isolator whose value cannot be used:
// malformed, zero or negative.
var ErrInvalidLimit = errors.New("invalid resource limit")

// MaxMemoryBytes caps one memory limit. Anything larger cannot be a real
// machine's memory; refusing it keeps every sum below well inside int64.
const MaxMemoryBytes = int64(1) << 50 // 1 PiB

// MaxCPUMilli caps one CPU limit (in thousandths of a core). A limit this
// high is already "unlimited" for any VM QEMU can start, so larger values are
// clamped to it rather than refused: the result means the same thing and
// stays far from integer overflow, here and in systemd's CPUQuota= parser.
const MaxCPUMilli = int64(10000) * 1000

// MemoryLimit returns the app's memory limit in bytes. ok is false when the
// app has no resource/memory isolator, or when its last one sets no limit:
// rkt appends --memory after the image's isolators, so the last occurrence
// is the one the user meant.
func MemoryLimit(app types.App) (bytes int64, ok bool, err error) {
	q, ok, err := lastLimit(app, types.ResourceMemoryName)
	if err != nil || !ok {
		return 0, false, err
	}
	if q.Sign() <= 0 {
		return 0, false, fmt.Errorf("%s limit %s: must be positive: %w", types.ResourceMemoryName, q.String(), ErrInvalidLimit)
	}
	if q.CmpInt64(MaxMemoryBytes) > 0 {
		return 0, false, fmt.Errorf("%s limit %s: larger than %d bytes: %w", types.ResourceMemoryName, q.String(), MaxMemoryBytes, ErrInvalidLimit)
	}
	// Value rounds a fractional byte count up.
	return q.Value(), true, nil
}

// CPULimitMilli returns the app's CPU limit in thousandths of a core (500m
// is 500, 2 is 2000), clamped to MaxCPUMilli; ok is false when there is
// none. The last resource/cpu isolator wins, as for MemoryLimit.
func CPULimitMilli(app types.App) (milli int64, ok bool, err error) {
	q, ok, err := lastLimit(app, types.ResourceCPUName)
	if err != nil || !ok {
		return 0, false, err
	}
	if q.Sign() <= 0 {
		return 0, false, fmt.Errorf("%s limit %s: must be positive: %w", types.ResourceCPUName, q.String(), ErrInvalidLimit)
	}
	// Compare in whole cores before asking for milli-cores, which could
	// overflow int64 for absurd values.
	if q.CmpInt64(MaxCPUMilli/1000) >= 0 {
		return MaxCPUMilli, true, nil
	}
	// MilliValue rounds a fraction of a milli-core up.
	return q.MilliValue(), true, nil
}

// lastLimit finds the last isolator named name in the app and returns its
// limit; ok is false when there is no such isolator or it has no limit.
func lastLimit(app types.App, name types.ACIdentifier) (q *resource.Quantity, ok bool, err error) {
	iso := app.Isolators.GetByName(name)
	if iso == nil {
		return nil, false, nil
	}
	v, err := isolatorValue(*iso)
	if err != nil {
		return nil, false, err
	}
	r, isRes := v.(types.Resource)
	if !isRes {
		return nil, false, fmt.Errorf("isolator %s: unexpected value type %T: %w", name, v, ErrInvalidLimit)
	}
	if r.Limit() == nil {
		return nil, false, nil
	}
	return r.Limit(), true, nil
}

// isolatorValue decodes an isolator's value. The raw JSON is preferred when
// present: it is what the manifest said, whereas the decoded value of an
// isolator built in code may be empty (appc's AsIsolator helpers leave it
// so). Decoding again also runs appc's validation.
func isolatorValue(iso types.Isolator) (types.IsolatorValue, error) {
	// A JSON null would crash appc's decoder: treat it as no value.
	if iso.ValueRaw != nil && string(bytes.TrimSpace(*iso.ValueRaw)) != "null" {
		doc, err := json.Marshal(struct {
			Name  types.ACIdentifier `json:"name"`
			Value *json.RawMessage   `json:"value"`
		}{iso.Name, iso.ValueRaw})
		if err != nil {
			return nil, fmt.Errorf("isolator %s: %w", iso.Name, err)
		}
		var fresh types.Isolator
		if err := json.Unmarshal(doc, &fresh); err != nil {
			return nil, fmt.Errorf("isolator %s: %v: %w", iso.Name, err, ErrInvalidLimit)
		}
		if v := fresh.Value(); v != nil {
			return v, nil
		}
	}
	if v := iso.Value(); v != nil {
		return v, nil
	}
	return nil, fmt.Errorf("isolator %s: no value: %w", iso.Name, ErrInvalidLimit)
}
