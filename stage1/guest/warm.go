package guest

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// warmTimeout bounds the warm-up request: it only saves the apps' first
// request some time, and must never hold their start for long.
const warmTimeout = 3 * time.Second

// Warm makes one HTTP request to rawURL (the pod's metadata service) and
// discards the answer, so that the apps' first request finds the gateway's
// neighbour entry made and the kernel's connection paths already run (under
// emulation, a guest's first connection costs ~100 ms more than the next).
// Failures are reported, never fatal.
func Warm(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("warm: %q is not an http URL", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	c, err := net.DialTimeout("tcp", host, warmTimeout)
	if err != nil {
		return fmt.Errorf("warm: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(warmTimeout))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", u.EscapedPath(), u.Host); err != nil {
		return fmt.Errorf("warm: %w", err)
	}
	_, err = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
	return err
}
