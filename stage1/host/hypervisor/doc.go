// Package hypervisor runs the pod's VM on the host: it probes the host's
// accelerator, starts QEMU from a qemu.Config (whose command line
// stage1/translate/qemu builds), waits for it or kills it, talks QMP to it,
// and starts the virtiofsd processes that serve virtiofs shares.
package hypervisor
