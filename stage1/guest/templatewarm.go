package guest

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// A template keeps the code its QEMU translated before the template point,
// and a clone's QEMU starts with it (docs/architecture.md, "Templates").
// Every clone's exit reporter talks to systemd over its private bus, which
// nothing in a template's boot does: run here once, the calls' code, ours
// and PID 1's, is translated already when a clone's reporter starts (a
// short pod's end waits for it).

// warmUpTimeout bounds the warm-up: past it the template is made without
// it (it only costs the clones time).
const warmUpTimeout = 20 * time.Second

// warmUp runs the warm-up when this boot makes a template
// (contract.MakingTemplateParam); a cold boot would only pay for it. A
// failure is reported and skipped.
func warmUp() {
	if kernelParam(contract.MakingTemplateParam) != "1" {
		return
	}
	if err := warmSystemdBus(time.Now().Add(warmUpTimeout)); err != nil {
		fmt.Fprintf(os.Stderr, "stage1-guest: warm-up: %v\n", err)
	}
}

// warmSystemdBus connects to systemd as the exit reporter does, watches
// unit changes and asks for a unit's state as for an ended app's, then
// disconnects: nothing is left of it in the guest.
func warmSystemdBus(deadline time.Time) error {
	conn, err := dialSystemd()
	if err != nil {
		return err
	}
	defer conn.close()
	conn.unitChanges(func(dbus.ObjectPath, map[string]dbus.Variant) {})
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	props := append([]property{activeState}, endState...)
	if _, err := conn.properties(ctx, contract.ConfigureService, props); err != nil {
		return fmt.Errorf("ask systemd: %w", err)
	}
	return nil
}
