package contract

import (
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
)

func TestEnvRoundTrip(t *testing.T) {
	env := []types.EnvironmentVariable{
		{Name: "PATH", Value: "/usr/bin:/bin"},
		{Name: "EMPTY", Value: ""},
		{Name: "MULTI", Value: "line one\nline two\n"},
		{Name: "BACKSLASH", Value: `C:\new\\path\`},
		{Name: "LITERAL", Value: `\n is not a newline`},
		{Name: "EQUALS", Value: "a=b=c"},
		{Name: "SPACES", Value: "  lead and trail  "},
		{Name: "UNICODE", Value: "héllo ✓ \t tab"},
		{Name: "SHELLY", Value: `$HOME "q" 'q' ; rm -rf / # %i`},
	}
	data, err := EncodeEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEnv(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(env) {
		t.Fatalf("got %d variables: %q", len(got), got)
	}
	for i, kv := range env {
		if want := kv.Name + "=" + kv.Value; got[i] != want {
			t.Errorf("variable %d: %q, want %q", i, got[i], want)
		}
	}
	if data, _ := EncodeEnv(nil); data == nil {
		t.Fatal("no encoding for an empty environment")
	} else if got, err := DecodeEnv(data); err != nil || len(got) != 0 {
		t.Errorf("empty env: %q, %v", got, err)
	}
}

func TestDecodeEnvRejects(t *testing.T) {
	for _, data := range []string{
		`"A=1"`,           // not a list
		`["A=1", "B"]`,    // not NAME=VALUE
		`["=x"]`,          // no name
		`["A=1", 2]`,      // not a string
		`["A=nul\u0000"]`, // NUL byte
		`["A=1"] trailing`,
		"[\"A=" + strings.Repeat("x", maxEnvFile) + "\"]", // over the size bound
	} {
		if _, err := DecodeEnv([]byte(data)); err == nil {
			t.Errorf("%q decoded", data)
		}
	}
}
