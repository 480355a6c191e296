// Package syncio has writers that several goroutines may share: Writer
// serializes writes to an io.Writer, Buffer is a bytes.Buffer that may be
// written and read at the same time. It imports nothing of this module, so
// host, guest and test code may all use it.
package syncio

import (
	"bytes"
	"io"
	"sync"
)

// Writer writes to W one Write at a time: each Write reaches W whole,
// never interleaved with another goroutine's. It counts what W accepted.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
	n  int64
}

// NewWriter returns a Writer serializing writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (l *Writer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}

// Written is how many bytes the underlying writer has accepted so far.
func (l *Writer) Written() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Buffer is a bytes.Buffer guarded by a mutex: one goroutine may read what
// has been written so far while others write. The zero value is empty and
// ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
