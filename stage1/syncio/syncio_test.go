package syncio

import (
	"runtime"
	"strings"
	"sync"
	"testing"
)

// chunkWriter records each Write it gets as one chunk, and counts Writes
// that overlapped another.
type chunkWriter struct {
	mu       sync.Mutex
	busy     bool
	overlaps int
	chunks   []string
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.busy {
		c.overlaps++
	}
	c.busy = true
	c.mu.Unlock()
	runtime.Gosched() // give another Write the chance to overlap
	c.mu.Lock()
	c.busy = false
	c.chunks = append(c.chunks, string(p))
	c.mu.Unlock()
	return len(p), nil
}

func TestWriterSerializes(t *testing.T) {
	cw := &chunkWriter{}
	w := NewWriter(cw)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line := strings.Repeat(string(rune('a'+i)), 100)
			for range 100 {
				if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
					t.Errorf("Write = %d, %v", n, err)
				}
			}
		}()
	}
	wg.Wait()
	if cw.overlaps > 0 {
		t.Errorf("%d Writes reached the underlying writer while another was in progress", cw.overlaps)
	}
	if len(cw.chunks) != 800 {
		t.Errorf("%d Writes reached the underlying writer, want 800", len(cw.chunks))
	}
}

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("xy"))
				_ = b.String() // reading while others write
			}
		}()
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("xy", 400) {
		t.Errorf("String() = %q, want 400 times xy", got)
	}
}
