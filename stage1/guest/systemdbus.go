package guest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// systemdPrivateBus is systemd's own D-Bus socket: no bus daemon runs in
// the guest.
const systemdPrivateBus = "unix:path=/run/systemd/private"

// systemdBus is one connection to systemd's private bus. systemd sends
// every unit change, with all its changed properties, to every connection
// on that socket, subscribed or not: go-systemd's client opens two (calls
// and signals apart), so systemd built each change twice and the
// forwarder read it twice, all on the guest's one emulated vCPU.
type systemdBus struct {
	conn *dbus.Conn
}

// dialSystemd connects to systemd and authenticates as our user. (Not
// bound to a context: godbus closes a connection when its context ends.)
func dialSystemd() (*systemdBus, error) {
	conn, err := dbus.Dial(systemdPrivateBus)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd: %w", err)
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to systemd: %w", err)
	}
	return &systemdBus{conn: conn}, nil
}

// close ends the connection (and the unitChanges goroutine with it).
func (b *systemdBus) close() error { return b.conn.Close() }

// unitChanges passes on every change of a unit's state systemd sends:
// the unit's object path and its changed properties. systemd sends a
// service's change in two signals, its Service interface's properties
// first, then its Unit interface's, and says clients may rely on that
// order; so the main process's end (ExecMainCode, ExecMainStatus) that
// came just before is passed on with the unit's state, and a reporter
// need not ask for it.
func (b *systemdBus) unitChanges(changed func(path dbus.ObjectPath, props map[string]dbus.Variant)) {
	ch := make(chan *dbus.Signal, 64)
	b.conn.Signal(ch)
	go func() {
		var r unitChangeReader
		for s := range ch {
			if path, props, ok := r.read(s); ok {
				changed(path, props)
			}
		}
	}()
}

// unitChangeReader reads unit changes from systemd's signals in order,
// keeping each service's last Service interface change until the Unit
// interface change that follows it.
type unitChangeReader struct {
	service map[dbus.ObjectPath]map[string]dbus.Variant
}

// read returns the unit change s completes, if it does: the unit's path
// and its Unit interface's changed properties, with the main process's
// end (ExecMainCode, ExecMainStatus) of the service change before it.
func (r *unitChangeReader) read(s *dbus.Signal) (dbus.ObjectPath, map[string]dbus.Variant, bool) {
	if s.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" || len(s.Body) < 2 {
		return "", nil, false
	}
	intf, _ := s.Body[0].(string)
	props, ok := s.Body[1].(map[string]dbus.Variant)
	if !ok {
		return "", nil, false
	}
	switch intf {
	case serviceInterface:
		if r.service == nil {
			r.service = map[dbus.ObjectPath]map[string]dbus.Variant{}
		}
		r.service[s.Path] = props
	case unitInterface:
		for _, name := range []string{"ExecMainCode", "ExecMainStatus"} {
			if v, ok := r.service[s.Path][name]; ok {
				props[name] = v
			}
		}
		delete(r.service, s.Path)
		return s.Path, props, true
	}
	return "", nil, false
}

// unitPath is the object path of unit on systemd's bus.
func unitPath(unit string) dbus.ObjectPath {
	return dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sdbus.PathBusEscape(unit))
}

// systemd's interfaces of a unit, and of a service.
const (
	unitInterface    = "org.freedesktop.systemd1.Unit"
	serviceInterface = "org.freedesktop.systemd1.Service"
)

// property names a D-Bus property of a unit (Interface: unitInterface or
// serviceInterface).
type property struct{ Interface, Name string }

// properties reads props of unit, sending every request before waiting
// for the first answer (one round trip through systemd's event loop
// instead of one per property).
func (b *systemdBus) properties(ctx context.Context, unit string, props []property) (map[string]any, error) {
	obj := b.conn.Object("org.freedesktop.systemd1", unitPath(unit))
	calls := make([]*dbus.Call, len(props))
	for i, p := range props {
		calls[i] = obj.GoWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, make(chan *dbus.Call, 1), p.Interface, p.Name)
	}
	got := make(map[string]any, len(props))
	for i, c := range calls {
		<-c.Done
		if c.Err != nil {
			return nil, fmt.Errorf("query %s %s: %w", unit, props[i].Name, c.Err)
		}
		var v dbus.Variant
		if err := c.Store(&v); err != nil {
			return nil, fmt.Errorf("query %s %s: %w", unit, props[i].Name, err)
		}
		got[props[i].Name] = v.Value()
	}
	return got, nil
}

// startUnit asks systemd to start unit, as `systemctl start` would,
// without waiting for the job.
func (b *systemdBus) startUnit(ctx context.Context, unit, mode string) error {
	obj := b.conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
	if err := obj.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.StartUnit", 0, unit, mode).Err; err != nil {
		return fmt.Errorf("start %s: %w", unit, err)
	}
	return nil
}

// awaitInactive waits, at most bound, until systemd says unit is inactive
// (or was never loaded: then it is loaded as inactive).
func (b *systemdBus) awaitInactive(ctx context.Context, unit string, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		got, err := b.properties(ctx, unit, []property{activeState})
		if err != nil {
			return err
		}
		if got["ActiveState"] == "inactive" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still %v after %v", unit, got["ActiveState"], bound)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
