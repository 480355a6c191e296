#!/bin/bash
# Builds the QEMU that pods run: Debian's own QEMU source (the version of the
# installed qemu-system-x86 package, with Debian's patches), our patches
# (qemu/patches/*.patch, applied in name order), for x86_64 only, with the
# microvm machine and just the devices the stage1 uses (qemu/devices.mak).
#
# Why not Debian's binary: it links some fifty libraries and carries every
# board and device, so an idle pod paid ~20 MiB more for code and relocated
# data it never used. And our patches let a pod hand what only boot needed
# back to the host once it has booted (see qemu/patches). The binary is
# static: its libraries (glib, pixman, zlib, libfdt, libseccomp) come from
# Debian's -dev packages.
#
# The result is cached outside the repository, keyed by a hash of everything
# that decides its bytes: this script, the device list, the patches and the
# exact source package version. A cache hit costs a hash; a miss downloads
# the source with apt-get (deb-src, set up by tools/deps.sh) and builds it
# (a few minutes).
#
# It writes OUTPUT_DIR/qemu-system-x86_64.
#
# usage: qemu/build.sh OUTPUT_DIR
#   QEMU_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-~/.cache}/stage1-kvm/qemu)
set -euo pipefail

out=${1:?usage: qemu/build.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
devices=$here/devices.mak

# The source version that built the installed binary package (a binNMU
# suffix such as +b3 names a rebuild, not other source).
if ! srcver=$(dpkg-query -W -f='${source:Version}' qemu-system-x86 2>/dev/null); then
	echo "qemu/build.sh: Debian package qemu-system-x86 is not installed (run: make deps)" >&2
	exit 1
fi

patches=("$here"/patches/*.patch)
key=$( { echo "qemu $srcver"; cat "$devices" "$0" "${patches[@]}"; } | sha256sum | cut -c1-16)
cache=${QEMU_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stage1-kvm/qemu}/$key

if [ ! -f "$cache/qemu-system-x86_64" ]; then
	echo "qemu: building $key from qemu $srcver (a few minutes)" >&2
	work=$(mktemp -d "${TMPDIR:-/tmp}/stage1-kvm-qemu.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	# apt drops privileges to _apt for downloads when it can: give it a
	# directory it may write.
	chmod 755 "$work"
	(cd "$work" && apt-get source -qq --download-only "qemu=$srcver" >/dev/null 2>&1) || {
		echo "qemu/build.sh: apt-get source qemu=$srcver failed (is deb-src set up? run: make deps)" >&2
		exit 1
	}
	# apt-get has checked the files against Debian's signed index;
	# dpkg-source's own signature check only lacks the uploader's key.
	dpkg-source -q -x "$work"/qemu_*.dsc "$work/src" >"$work/unpack.log" 2>&1 || { cat "$work/unpack.log" >&2; exit 1; }
	src=$work/src
	for p in "${patches[@]}"; do
		patch -d "$src" -p1 -s < "$p"
	done
	cp "$devices" "$src/configs/devices/x86_64-softmmu/stage1-kvm.mak"
	mkdir "$work/build"
	# Every feature off unless named: TCG and KVM, 9p (virtfs) and
	# vhost-user (virtiofs) are all the host side the stage1 needs, and
	# seccomp for -sandbox (the guest is hostile: docs/security.md).
	# malloc_trim: QEMU trims glibc's heap whenever its RCU queue runs
	# empty, which hands back the free pages inside the heap, not only at
	# its top; as an "auto" feature it was off with the defaults off.
	# Static and not position-independent: no shared libraries to load,
	# no relocations to write at every start (-1.5 and -1.2 MiB of an idle
	# pod's memory).
	(cd "$work/build" && "$src/configure" -q --static --disable-pie \
		--target-list=x86_64-softmmu \
		--without-default-features --without-default-devices \
		--with-devices-x86_64=stage1-kvm \
		--enable-tcg --enable-kvm --enable-virtfs --enable-vhost-user \
		--enable-attr --enable-cap-ng --enable-fdt=system --enable-seccomp \
		--enable-trace-backends=nop --enable-malloc-trim \
		--disable-docs --disable-tools --disable-guest-agent --disable-werror \
		>"$work/configure.log" 2>&1) || { tail -30 "$work/configure.log" >&2; exit 1; }
	ninja -C "$work/build" qemu-system-x86_64 >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
	mkdir -p "$cache.tmp"
	strip -o "$cache.tmp/qemu-system-x86_64" "$work/build/qemu-system-x86_64"
	rm -rf "$cache"
	mv "$cache.tmp" "$cache"
fi

mkdir -p "$out"
cp "$cache/qemu-system-x86_64" "$out/qemu-system-x86_64.tmp"
mv "$out/qemu-system-x86_64.tmp" "$out/qemu-system-x86_64"
