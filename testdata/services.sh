#!/bin/sh
# The services the scale-out tests drive, on loopback only:
#
#   sh testdata/services.sh start   build etcd (once, cached), start a
#                                   3-member cluster, wait until healthy
#   sh testdata/services.sh stop    stop it by PID (TERM, then KILL)
#   sh testdata/services.sh status  exit 0 if the cluster runs and is healthy
#   sh testdata/services.sh env     print the variables the tests read (the
#                                   cluster's endpoints; the etcd binary, for
#                                   tests that run a cluster of their own)
#
# etcd 3.7.3 is built from the Go module proxy through a wrapper module:
# `go install go.etcd.io/etcd/server/v3@v3.7.3` is refused because the
# server's go.mod has replace directives (SCALEOUT.md §4). The binary is
# cached in $CLFS_CI_BIN (default $HOME/.cache/clfs-ci/bin). Members listen
# for clients on 127.0.0.1:23790-23792, for peers on 23800-23802 and serve
# /health on 23810-23812; their data, logs and PID files are under
# $CLFS_CI_RUN (default /tmp/clfs-ci-services), wiped at every start.
set -eu
ETCD_VERSION=v3.7.3
BIN=${CLFS_CI_BIN:-${HOME:-/root}/.cache/clfs-ci/bin}
RUN=${CLFS_CI_RUN:-/tmp/clfs-ci-services}
ENDPOINTS=127.0.0.1:23790,127.0.0.1:23791,127.0.0.1:23792
export PATH="$PATH:/usr/local/go/bin"

build_etcd() {
	if [ -x "$BIN/etcd-$ETCD_VERSION" ]; then
		return
	fi
	mkdir -p "$BIN"
	w=$(mktemp -d)
	echo "services.sh: building etcd $ETCD_VERSION into $BIN" >&2
	(
		cd "$w"
		printf 'module etcdwrap\n\ngo 1.26\n' >go.mod
		GOFLAGS=-mod=mod go get go.etcd.io/etcd/server/v3@$ETCD_VERSION
		GOFLAGS=-mod=mod go build -o "$BIN/etcd-$ETCD_VERSION.tmp" go.etcd.io/etcd/server/v3
	) || {
		rm -rf "$w"
		exit 1
	}
	rm -rf "$w"
	mv "$BIN/etcd-$ETCD_VERSION.tmp" "$BIN/etcd-$ETCD_VERSION"
}

healthy() { curl -sf "http://127.0.0.1:2381$1/health" 2>/dev/null | grep -q '"health":"true"'; }

running() {
	for i in 0 1 2; do
		[ -f "$RUN/etcd$i.pid" ] && kill -0 "$(cat "$RUN/etcd$i.pid")" 2>/dev/null && healthy $i || return 1
	done
}

start() {
	if running; then
		echo "services.sh: etcd already running ($ENDPOINTS)" >&2
		return
	fi
	stop
	build_etcd
	rm -rf "$RUN"
	mkdir -p "$RUN/logs"
	cluster=m0=http://127.0.0.1:23800,m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802
	for i in 0 1 2; do
		"$BIN/etcd-$ETCD_VERSION" --name m$i --data-dir "$RUN/etcd$i" \
			--listen-client-urls http://127.0.0.1:2379$i --advertise-client-urls http://127.0.0.1:2379$i \
			--listen-peer-urls http://127.0.0.1:2380$i --initial-advertise-peer-urls http://127.0.0.1:2380$i \
			--listen-metrics-urls http://127.0.0.1:2381$i --initial-cluster "$cluster" \
			--initial-cluster-token clfs-ci --initial-cluster-state new --log-level warn \
			>"$RUN/logs/etcd$i.log" 2>&1 &
		echo $! >"$RUN/etcd$i.pid"
	done
	for i in 0 1 2; do
		n=0
		until healthy $i; do
			n=$((n + 1))
			if [ $n -gt 300 ]; then
				echo "services.sh: etcd member m$i not healthy after 30 s; log:" >&2
				tail -20 "$RUN/logs/etcd$i.log" >&2
				stop
				exit 1
			fi
			sleep 0.1
		done
	done
	echo "services.sh: etcd $ETCD_VERSION running, 3 members ($ENDPOINTS)" >&2
}

stop() {
	[ -d "$RUN" ] || return 0
	for f in "$RUN"/*.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
	done
	for f in "$RUN"/*.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		n=0
		while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		if kill -9 "$pid" 2>/dev/null; then
			n=0
			while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
				sleep 0.1
				n=$((n + 1))
			done
		fi
		rm -f "$f"
	done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) running ;;
env)
	echo "CLFS_TEST_ETCD=$ENDPOINTS"
	echo "CLFS_TEST_ETCD_BIN=$BIN/etcd-$ETCD_VERSION"
	;;
*)
	echo "usage: sh testdata/services.sh start|stop|status|env" >&2
	exit 2
	;;
esac
