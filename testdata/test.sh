#!/bin/sh
# The whole test suite, as README.md's second command and CI run it: it
# installs the tools the tests drive for real when they are missing
# (Debian packages, as root), then runs every test with the race detector.
# Extra arguments go to go test (sh testdata/test.sh -run TestPOSIX).
#
# The etcd engine's tests need a cluster: with CLFS_TEST_ETCD unset, this
# script starts one (testdata/services.sh: etcd built once from the module
# proxy, cached; three members on 127.0.0.1:23790-23792) and stops it by
# PID when the tests end (one already running is used and left running).
# CI starts its own and sets CLFS_TEST_ETCD.
# CLFS_TEST_ETCD=none skips the etcd tests (not allowed under CI).
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

pkgs="rsync restic fio fuse3 attr util-linux coreutils tar sed python3"
missing=""
for p in $pkgs; do
	# Not dpkg -s: it succeeds for a removed package whose configuration
	# files are left ("deinstall ok config-files").
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "test.sh: the tests drive$missing; run as root to install them (apt-get), or install them first" >&2
		exit 1
	fi
	echo "test.sh: installing$missing" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if [ -z "${CLFS_TEST_ETCD:-}" ]; then
	if ! sh testdata/services.sh status; then
		sh testdata/services.sh start
		trap 'sh testdata/services.sh stop' EXIT INT TERM
	fi
	CLFS_TEST_ETCD=$(sh testdata/services.sh env | sed -n 's/^CLFS_TEST_ETCD=//p')
fi
if [ -z "${CLFS_TEST_ETCD_BIN:-}" ]; then
	CLFS_TEST_ETCD_BIN=$(sh testdata/services.sh env | sed -n 's/^CLFS_TEST_ETCD_BIN=//p')
fi
export CLFS_TEST_ETCD_BIN
if [ "$CLFS_TEST_ETCD" = none ]; then
	unset CLFS_TEST_ETCD
else
	export CLFS_TEST_ETCD
fi

go test -race -count=1 "$@" ./...
