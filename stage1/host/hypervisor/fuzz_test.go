package hypervisor

import "testing"

// FuzzCodeBufferRSS: QEMU, which the guest may have taken over, chooses
// the mappings its smaps lists (their number, perms, names). Whatever the
// listing, the parse must not panic, and what it accepts is a size in
// bytes within its bound.
func FuzzCodeBufferRSS(f *testing.F) {
	f.Add([]byte(smapsSample))
	f.Add([]byte(""))
	f.Add([]byte("7f0000000000-7f0004000000 rwxp 00000000 00:00 0\nRss: 4 kB\nSize: 8 kB\n"))
	f.Add([]byte("7f0000000000-7f0004000000 rwxp 00000000 00:00 0 \nSize:\nRss: kB\n"))
	f.Add([]byte("a b\n\n:\nSize: 1099511627776 kB\nRss: 1099511627777 kB\n"))
	f.Fuzz(func(t *testing.T, listing []byte) {
		n, err := codeBufferRSS(listing)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with a size %d", err, n)
			}
			return
		}
		if n < 0 || n > 1<<50 {
			t.Fatalf("size %d out of bounds", n)
		}
	})
}
