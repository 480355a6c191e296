// Package archtest holds the architecture test: it checks, from the
// module's import graph (go list -deps), that the host side, the guest side,
// the pure translators and the shared packages depend only on what they may
// (see docs/architecture.md). It has no code of its own.
package archtest
