package main

import (
	"errors"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--bogus", "4c5f9d2e-8f0e-4d8c-9b3a-2f6f1c0d7e11"},
		{"--force", "a", "b"},
	} {
		if err := run(args); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

func TestNotRunning(t *testing.T) {
	// No pid file: nothing to stop.
	t.Chdir(t.TempDir())
	if err := run([]string{"--force", "4c5f9d2e-8f0e-4d8c-9b3a-2f6f1c0d7e11"}); err != nil {
		t.Errorf("stop of a pod that is not running: %v", err)
	}
}
