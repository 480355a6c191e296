// Package units writes the systemd units that run a pod's apps inside the
// guest: one service per app, the I/O forwarder, the ready and settled marks and
// the target that pulls them all in. It is a pure translation from the pod's
// manifests to unit files (the only I/O is reading user and group databases
// from the apps' own rootfs), so that every rule of appc and rkt it applies
// can be unit-tested without a VM.
package units
