package contract

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
)

// FuzzParseEvent: event lines come from the guest, which the host does not
// trust. Whatever the line, ParseEvent must not panic; what it accepts must
// be a well-formed event (a known kind, an exit status rkt can record, an
// app name that is an AC name, so it cannot smuggle spaces, control
// characters or a path into the host's logs and records) and must come back
// unchanged through its wire form.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		"ready", "ready\n", "ready kernel_ms=300 total_ms=1100", "ready kernel_ms=0 total_ms=0",
		"ready kernel_ms=5 total_ms=0", "ready kernel_ms=-1 total_ms=-5", "ready kernel_ms=1x total_ms=2",
		"stdin-ready", "agent-ready", "settled", "settled now",
		"exited web 0", "exited web 255", "exited web 256", "exited web -1", "exited web +7",
		"exited ../../etc/passwd 1", "exited \x1b[2J 1", "exited Web 1", "exited a\u00a0b 1",
		"", " ", "\n", "boom", "exited web",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseEvent(line)
		if err != nil {
			if !errors.Is(err, ErrMalformedEvent) {
				t.Fatalf("ParseEvent(%q): error %v does not wrap ErrMalformedEvent", line, err)
			}
			if e != (Event{}) {
				t.Fatalf("ParseEvent(%q): error with a non-zero event %#v", line, e)
			}
			return
		}
		switch e.Kind {
		case EventReady:
			if e.KernelMs < 0 || e.TotalMs < 0 {
				t.Fatalf("ParseEvent(%q) = %#v: negative timing", line, e)
			}
		case EventStdinReady, EventAgentReady, EventSettled:
		case EventExited:
			if _, err := types.NewACName(e.App); err != nil {
				t.Fatalf("ParseEvent(%q) = %#v: app name is not an AC name: %v", line, e, err)
			}
			if e.Status < 0 || e.Status > 255 {
				t.Fatalf("ParseEvent(%q) = %#v: status out of 0..255", line, e)
			}
		default:
			t.Fatalf("ParseEvent(%q) = %#v: unknown kind", line, e)
		}
		if e.Kind != EventExited && (e.App != "" || e.Status != 0) {
			t.Fatalf("ParseEvent(%q) = %#v: app or status on a %s event", line, e, e.Kind)
		}
		if e.Kind != EventReady && (e.KernelMs != 0 || e.TotalMs != 0) {
			t.Fatalf("ParseEvent(%q) = %#v: timings on a %s event", line, e, e.Kind)
		}
		wire := e.String()
		if strings.ContainsAny(wire, "\r\n") {
			t.Fatalf("wire form %q of %#v is not one line", wire, e)
		}
		back, err := ParseEvent(wire + "\n")
		if err != nil || back != e {
			t.Fatalf("ParseEvent(%q) = %#v; its wire form %q parses to %#v, %v", line, e, wire, back, err)
		}
	})
}

// FuzzDecodeEnv: an app's environment file is read by the guest agent; it
// must not panic on any content, and what it accepts must be NAME=VALUE
// entries without NUL (execve's limits) that EncodeEnv writes back to the
// same entries.
func FuzzDecodeEnv(f *testing.F) {
	for _, s := range []string{
		`[]`, `null`, `["A=1","PATH=/usr/bin:/bin"]`, `["A=1", "B"]`, `["=x"]`, `["A=b=c"]`,
		`["A=nul\u0000"]`, `["A\u0000=1"]`, `["A=\n\"\\"]`, `["A=\ud800"]`, "[\"A=\xff\"]",
		`["A=1"] trailing`, `"A=1"`, `[1]`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := DecodeEnv(data)
		if err != nil {
			return
		}
		vars := make([]types.EnvironmentVariable, len(env))
		for i, kv := range env {
			if strings.IndexByte(kv, 0) >= 0 {
				t.Fatalf("entry %d %q: NUL byte accepted", i, kv)
			}
			name, value, ok := strings.Cut(kv, "=")
			if !ok || name == "" {
				t.Fatalf("entry %d %q: not NAME=VALUE", i, kv)
			}
			vars[i] = types.EnvironmentVariable{Name: name, Value: value}
		}
		enc, err := EncodeEnv(vars)
		if err != nil {
			t.Fatalf("EncodeEnv of accepted entries %q: %v", env, err)
		}
		back, err := DecodeEnv(enc)
		if err != nil {
			t.Fatalf("DecodeEnv(EncodeEnv(%q)) = %v", env, err)
		}
		if len(back) != len(env) {
			t.Fatalf("round trip: %q became %q", env, back)
		}
		for i := range env {
			if back[i] != env[i] {
				t.Fatalf("round trip: entry %d %q became %q", i, env[i], back[i])
			}
		}
		// The encoding is canonical: encoding again gives the same bytes.
		if again, _ := EncodeEnv(vars); !bytes.Equal(again, enc) {
			t.Fatalf("EncodeEnv is not deterministic: %q then %q", enc, again)
		}
	})
}

// FuzzReadPodConfig: the guest reads its configuration from the host,
// which it trusts, but a bug must show as an error: whatever the bytes,
// ReadPodConfig must not panic or read past what a configuration it
// accepts spans, and what it accepts must encode back to the same
// configuration.
func FuzzReadPodConfig(f *testing.F) {
	good, _ := PodConfig{
		Hostname: "rkt-a", MachineID: strings.Repeat("0", 32), Entropy: make([]byte, EntropyBytes), UnixNano: 1,
		Units: []PodFile{{Name: "a.service", Data: "[Unit]\n"}}, Accounts: []PodFile{{Name: "group", Data: "root:x:0:\n"}},
	}.Encode()
	for _, s := range []string{string(good), "", "\n", "0\n\n", "2\n{}\n", "99999999999999999999\n", "3\n{}\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		c, err := ReadPodConfig(r)
		if err != nil {
			if !errors.Is(err, ErrBadPodConfig) {
				t.Fatalf("error %v does not wrap ErrBadPodConfig", err)
			}
			return
		}
		out, err := c.Encode()
		if err != nil {
			t.Fatalf("accepted %+v does not encode: %v", c, err)
		}
		again, err := ReadPodConfig(bytes.NewReader(out))
		if err != nil || again.Hostname != c.Hostname || len(again.Units) != len(c.Units) || len(again.Accounts) != len(c.Accounts) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
		// Exactly the length line, the JSON and its newline.
		i := bytes.IndexByte(in, '\n')
		n, _ := strconv.Atoi(string(in[:i]))
		if used := len(in) - r.Len(); used != i+1+n+1 {
			t.Fatalf("read %d bytes of a configuration that spans %d", used, i+1+n+1)
		}
	})
}
