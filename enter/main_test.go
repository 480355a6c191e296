package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stage1-kvm/stage1-kvm/stage1/cli"
	"github.com/stage1-kvm/stage1-kvm/stage1/host/enter"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--pid=1", "--appname=a", "--"},
		{"--pid=1", "--", "sh"},
		{"--bogus", "--appname=a", "--", "sh"},
	} {
		var msg bytes.Buffer
		code, err := run(args)
		code = cli.Report(&msg, enter.Prog, code, err)
		if code != cli.Usage || !strings.Contains(msg.String(), "usage: enter") {
			t.Errorf("%q: exit %d, stderr %q", args, code, msg.String())
		}
	}
}
