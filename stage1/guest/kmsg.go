package guest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// kernelSeqnumFile is where journald keeps the sequence number of the next
// kernel message it will store (its "kernel-seqnum" file, mapped by
// journald as one native-endian uint64): journald skips every earlier
// message in /dev/kmsg, as it does after a restart.
const kernelSeqnumFile = journaldRunDir + "/kernel-seqnum"

// skipBootKernelLog makes journald leave out of the pod's journal the
// kernel messages logged so far: the guest kernel's boot. Run at the
// template point, so that a clone's journal does not hold its template's
// boot (every clone would repeat it, with the template's times) and a
// cold pod's journal is the same. Kernel messages logged after it (an
// app killed for memory, a segfault) are stored as before. (A rkt pod's
// journal, in a container, has no kernel messages at all; here
// journald's import of the ~250 lines of the boot was a share of its
// start, which a short pod's end waits for.)
func skipBootKernelLog() error {
	next, err := nextKernelSeqnum()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(journaldRunDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(kernelSeqnumFile, binary.NativeEndian.AppendUint64(nil, next), 0o644)
}

// nextKernelSeqnum reads /dev/kmsg to its end and returns the sequence
// number the next kernel message will have.
func nextKernelSeqnum() (uint64, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open /dev/kmsg: %w", err)
	}
	defer unix.Close(fd)
	// A record is at most 8 KiB (the kernel's CONSOLE_EXT_LOG_MAX).
	buf := make([]byte, 8192)
	var next uint64
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return next, nil
		case errors.Is(err, unix.EPIPE):
			// Records overwritten while reading: go on from the
			// oldest one left.
			continue
		case err != nil:
			return 0, fmt.Errorf("read /dev/kmsg: %w", err)
		}
		seq, err := kmsgSeqnum(buf[:n])
		if err != nil {
			return 0, err
		}
		next = seq + 1
	}
}

// kmsgSeqnum is the sequence number of one /dev/kmsg record
// ("priority,sequence,timestamp,flags[,...];message").
func kmsgSeqnum(record []byte) (uint64, error) {
	head, _, ok := bytes.Cut(record, []byte(";"))
	fields := bytes.Split(head, []byte(","))
	if !ok || len(fields) < 4 {
		return 0, fmt.Errorf("kernel log record %.40q: no sequence number", record)
	}
	seq, err := strconv.ParseUint(string(fields[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("kernel log record %.40q: %w", record, err)
	}
	return seq, nil
}
