package guest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/stage1-kvm/stage1-kvm/stage1/contract"
)

// journalVarlink is journald's own control socket (it creates it when it
// starts; it is not socket-activated).
const journalVarlink = journaldRunDir + "/io.systemd.journal"

// journaldRunDir is journald's runtime directory: its sockets, and the
// files through which the guest tells it the journal's state.
const journaldRunDir = "/run/systemd/journal"

// SyncJournal (bounded by contract.JournalSyncTimeout, the wait for
// journald to start included: the pod's apps start before journald, so a
// short-lived pod can reach its end while journald is still starting)
// returns once journald has written to disk every message sent
// to it before the call, the ones still queued in its sockets included
// (journald answers its Synchronize call only after processing what it had
// received). The forwarder sends the apps' output to journald and calls
// this before it exits, so none of it is lost when the guest powers off.
func SyncJournal() error {
	return syncJournal(journalVarlink, time.Now().Add(contract.JournalSyncTimeout))
}

func syncJournal(socket string, deadline time.Time) error {
	var conn net.Conn
	for {
		c, err := net.DialTimeout("unix", socket, time.Until(deadline))
		if err == nil {
			conn = c
			break
		}
		// Not there yet (journald still starting) or refusing: retry.
		if time.Now().After(deadline) {
			return fmt.Errorf("journal sync: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	// Varlink: a JSON object per message, each ended by a NUL byte.
	if _, err := conn.Write([]byte(`{"method":"io.systemd.Journal.Synchronize","parameters":{}}` + "\x00")); err != nil {
		return fmt.Errorf("journal sync: %w", err)
	}
	reply, err := bufio.NewReader(conn).ReadBytes(0)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("journal sync: no answer within %v", contract.JournalSyncTimeout)
	} else if err != nil {
		return fmt.Errorf("journal sync: %w", err)
	}
	var r struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(bytes.TrimSuffix(reply, []byte{0}), &r); err != nil {
		return fmt.Errorf("journal sync: bad reply %q: %w", reply, err)
	}
	if r.Error != "" {
		return fmt.Errorf("journal sync: %s", r.Error)
	}
	return nil
}
