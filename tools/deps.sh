#!/bin/bash
# Installs the Debian packages the build, the tests and the demo need, if any
# is missing. Go itself (1.26, /usr/local/go) is expected on the machine.
set -euo pipefail

packages=(
	# guest kernel build
	linux-source-6.1 build-essential bc bison flex libelf-dev libssl-dev xz-utils patch
	# QEMU: we build Debian's QEMU source (qemu/build.sh) and bundle it
	# into the ACI with the microvm firmware and virtiofsd from Debian
	qemu-system-x86 qemu-system-data
	dpkg-dev meson ninja-build python3 pkg-config
	libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev libcap-ng-dev libattr1-dev
	# QEMU's -sandbox (its seccomp filter), linked statically
	libseccomp-dev
	# guest OS image: systemd from the build host, packed as erofs
	systemd erofs-utils
	# pod networking: CNI plugins call iptables; the network tests use ip
	iptables iproute2
	# test app images
	busybox-static
	# network benchmarks (host side, and copied with their libraries into
	# a test app image for the guest side)
	iperf3 iputils-ping
)

missing=()
for p in "${packages[@]}"; do
	if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# qemu/build.sh fetches QEMU's source with apt-get source: it needs the
# source index (deb-src) of the suites this machine installs from.
if [ -z "$(apt-cache showsrc qemu 2>/dev/null)" ]; then
	if [ ! -f /etc/apt/sources.list.d/debian.sources ]; then
		echo "deps: no /etc/apt/sources.list.d/debian.sources to derive deb-src from; add deb-src lines for qemu by hand" >&2
		exit 1
	fi
	echo "deps: adding Debian's source index (deb-src), for QEMU's source" >&2
	sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
		> /etc/apt/sources.list.d/stage1-kvm-deb-src.sources
	apt-get update -qq
fi
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	echo "deps: go is at /usr/local/go/bin; add it to PATH" >&2
fi
