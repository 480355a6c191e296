package agent

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/appc/spec/schema/types"
)

// EnvDir, relative to the stage1 rootfs (the guest's /pod), holds one file
// per app with the app's environment, which enter gives the commands it
// runs: <pod>/stage1/rootfs/rkt/env/<app> on the host, /pod/rkt/env/<app>
// in the guest.
const EnvDir = "rkt/env"

// EncodeEnv writes an environment as the env file's content: one NAME=VALUE
// per line, with backslash written as \\ and newline as \n, so any value
// survives.
func EncodeEnv(env []types.EnvironmentVariable) []byte {
	var b bytes.Buffer
	esc := strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	for _, kv := range env {
		b.WriteString(esc.Replace(kv.Name))
		b.WriteByte('=')
		b.WriteString(esc.Replace(kv.Value))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// DecodeEnv reads an env file back into NAME=VALUE strings, in file order.
func DecodeEnv(data []byte) ([]string, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("env file: last line does not end with a newline")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	env := make([]string, 0, len(lines))
	for i, l := range lines {
		kv, err := unescapeEnv(l)
		if err != nil {
			return nil, fmt.Errorf("env file line %d: %w", i+1, err)
		}
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("env file line %d: not NAME=VALUE", i+1)
		}
		if strings.IndexByte(kv, 0) >= 0 {
			return nil, fmt.Errorf("env file line %d: NUL byte in %s", i+1, name)
		}
		env = append(env, kv)
	}
	return env, nil
}

func unescapeEnv(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("backslash at the end of the line")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}
