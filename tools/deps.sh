#!/bin/bash
# Installs the Debian packages the build, the tests and the demo need, if any
# is missing. Go itself (1.26, /usr/local/go) is expected on the machine.
set -euo pipefail

packages=(
	# guest kernel build
	linux-source-6.1 build-essential bc bison flex libelf-dev libssl-dev xz-utils patch
	# QEMU (bundled into the ACI) and its microvm firmware
	qemu-system-x86 qemu-system-data
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
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	echo "deps: go is at /usr/local/go/bin; add it to PATH" >&2
fi
