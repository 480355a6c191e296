package units

import "errors"

// Conditions callers may want to tell apart. Every error Generate returns
// wraps at most one of them, with the app and the offending value named.
var (
	// ErrUnsupportedIsolator: the app has an isolator this stage1 does not
	// enforce yet. Refusing is safer than running the app without it.
	ErrUnsupportedIsolator = errors.New("unsupported isolator")
	// ErrUnknownUser and ErrUnknownGroup: a user or group name (or file)
	// the app's own rootfs does not define.
	ErrUnknownUser  = errors.New("unknown user")
	ErrUnknownGroup = errors.New("unknown group")
	// ErrUnrepresentable: a value that systemd cannot carry faithfully (a
	// NUL byte in an argument, an environment variable name systemd
	// rejects, ...). Generate refuses it rather than let systemd drop or
	// alter it.
	ErrUnrepresentable = errors.New("value cannot be passed through systemd")
	// ErrUnsupportedStreamMode: an app asks for a stream mode that needs
	// rkt attach (--stdin/--stdout/--stderr=tty|stream).
	ErrUnsupportedStreamMode = errors.New("unsupported stream mode")
	// ErrInvalidPod: the pod itself is malformed (no apps, bad or
	// duplicate app names, --interactive with several apps, a relative
	// executable).
	ErrInvalidPod = errors.New("invalid pod")
)
