#!/bin/bash
# Builds the guest kernel from Debian's linux-source-6.1 package, our patches
# (kernel/patches/*.patch, applied in name order) and the config fragment
# kernel/guest.config.
#
# The result is cached outside the repository, keyed by a hash of everything
# that decides its bytes: the fragment, the patches, this script and the exact
# source package version. A cache hit costs a hash; a miss costs a full build.
#
# It writes OUTPUT_DIR/bzImage (what pods boot: LZ4-compressed),
# OUTPUT_DIR/vmlinux (the same kernel uncompressed, PVH-bootable) and
# OUTPUT_DIR/vmlinux.config.
#
# usage: kernel/build.sh OUTPUT_DIR
#   KERNEL_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-~/.cache}/stage1-kvm/kernel)
set -euo pipefail

out=${1:?usage: kernel/build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/guest.config
tarball=/usr/src/linux-source-6.1.tar.xz

if ! srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null) || [ ! -f "$tarball" ]; then
	echo "kernel/build.sh: Debian package linux-source-6.1 is not installed (run: make deps)" >&2
	exit 1
fi

patches=("$here"/patches/*.patch)
key=$( { echo "linux-source-6.1 $srcver"; cat "$fragment" "$0" "${patches[@]}"; } | sha256sum | cut -c1-16)
cache=${KERNEL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stage1-kvm/kernel}/$key

if [ ! -f "$cache/vmlinux" ] || [ ! -f "$cache/bzImage" ]; then
	echo "kernel: building $key from linux-source-6.1 $srcver (several minutes)" >&2
	work=$(mktemp -d "${TMPDIR:-/tmp}/stage1-kvm-kernel.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	tar -C "$work" -xf "$tarball"
	src=$work/linux-source-6.1
	for p in "${patches[@]}"; do
		patch -d "$src" -p1 -s < "$p"
	done
	# Fixed build metadata so the same inputs give the same vmlinux.
	export KBUILD_BUILD_TIMESTAMP="1970-01-01" KBUILD_BUILD_USER=stage1-kvm \
		KBUILD_BUILD_HOST=stage1-kvm KBUILD_BUILD_VERSION=1
	make -C "$src" -s ARCH=x86_64 tinyconfig
	"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$fragment" >/dev/null
	make -C "$src" -s ARCH=x86_64 olddefconfig

	# Every value the fragment asks for must have survived olddefconfig.
	missing=0
	while read -r line; do
		case $line in
		CONFIG_*=*)
			grep -qxF "$line" "$src/.config" || { echo "kernel: $line did not survive olddefconfig" >&2; missing=1; } ;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }; opt=${opt%% *}
			if grep -q "^$opt=" "$src/.config"; then echo "kernel: $opt should be off but is on" >&2; missing=1; fi ;;
		esac
	done < "$fragment"
	[ "$missing" = 0 ] || exit 1

	make -C "$src" -s ARCH=x86_64 -j"$(nproc)" vmlinux bzImage
	mkdir -p "$cache.tmp"
	cp "$src/vmlinux" "$cache.tmp/vmlinux"
	cp "$src/arch/x86/boot/bzImage" "$cache.tmp/bzImage"
	cp "$src/.config" "$cache.tmp/config"
	rm -rf "$cache"
	mv "$cache.tmp" "$cache"
fi

mkdir -p "$out"
for f in vmlinux bzImage; do
	cp "$cache/$f" "$out/$f.tmp"
	mv "$out/$f.tmp" "$out/$f"
done
cp "$cache/config" "$out/vmlinux.config"
