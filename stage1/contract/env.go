package contract

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/appc/spec/schema/types"
)

// maxEnvFile bounds an app's environment file (EnvDir): far more than any
// real environment, small enough to read whole.
const maxEnvFile = 4 << 20

// EncodeEnv is the content of an app's environment file: a JSON list of
// "NAME=VALUE" strings, in order.
func EncodeEnv(env []types.EnvironmentVariable) ([]byte, error) {
	list := make([]string, len(env))
	for i, kv := range env {
		list[i] = kv.Name + "=" + kv.Value
	}
	return json.Marshal(list)
}

// DecodeEnv reads an environment file back into "NAME=VALUE" strings,
// refusing anything EncodeEnv would not have written.
func DecodeEnv(data []byte) ([]string, error) {
	if len(data) > maxEnvFile {
		return nil, fmt.Errorf("env file: %d bytes, over the %d limit", len(data), maxEnvFile)
	}
	var env []string
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	for i, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("env file entry %d: not NAME=VALUE", i+1)
		}
		if strings.IndexByte(kv, 0) >= 0 {
			return nil, fmt.Errorf("env file entry %d: NUL byte in %s", i+1, name)
		}
	}
	return env, nil
}
