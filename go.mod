module github.com/stage1-kvm/stage1-kvm

go 1.26.0

require (
	github.com/appc/spec v0.8.11
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/creack/pty v1.1.24
	github.com/hashicorp/go-multierror v1.1.1
	github.com/hashicorp/yamux v0.1.2
	golang.org/x/sys v0.49.0
	golang.org/x/term v0.47.0
)

require (
	github.com/coreos/go-semver v0.3.1 // indirect
	github.com/google/gofuzz v1.2.0 // indirect
	github.com/hashicorp/errwrap v1.0.0 // indirect
	github.com/spf13/pflag v1.1.0 // indirect
	go4.org v0.0.0-20260112195520-a5071408f32f // indirect
	gopkg.in/inf.v0 v0.9.1 // indirect
)
