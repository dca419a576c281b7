#!/usr/bin/env bash
# test-deps.sh makes sure the system programs the tests run exist:
#   redis-server  (Debian package redis-server)  for the Redis store tests
#   chromium      (Debian package chromium)      for the demo page tests
#   redis-sentinel, php-cli, php-redis, python3-redis  for the Redis ingest,
#                 function and Sentinel tests (the seeds' PHP and Python publishers)
#   nginx         (Debian package nginx-light)   for the deploy/nginx.conf tests
#
# Quiet and quick when everything is there. Otherwise, as root with apt-get,
# it installs the missing packages; without root or apt-get it exits 1 and
# names what is missing. It waits (up to LOCK_WAIT seconds, default 300) for
# another apt/dpkg run to finish instead of failing on the dpkg lock.
set -euo pipefail

LOCK_WAIT="${LOCK_WAIT:-300}"

log() { printf 'test-deps: %s\n' "$*" >&2; }

have_redis() { command -v redis-server >/dev/null 2>&1; }
have_chromium() { [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; }
have_php_redis() { command -v php >/dev/null 2>&1 && php -r 'exit(class_exists("Redis") ? 0 : 1);' >/dev/null 2>&1; }
have_nginx() { [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1; }

missing_packages() {
	local missing=()
	have_redis || missing+=(redis-server)
	have_chromium || missing+=(chromium)
	command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
	command -v php >/dev/null 2>&1 || missing+=(php-cli)
	have_php_redis || missing+=(php-redis)
	/usr/bin/python3 -c 'import redis' >/dev/null 2>&1 || missing+=(python3-redis)
	have_nginx || missing+=(nginx-light)
	echo "${missing[@]+"${missing[@]}"}"
}

# apt_busy reports whether another apt or dpkg process is running.
apt_busy() {
	pgrep -x apt-get >/dev/null 2>&1 || pgrep -x apt >/dev/null 2>&1 ||
		pgrep -x dpkg >/dev/null 2>&1 || pgrep -x unattended-upgr >/dev/null 2>&1
}

# wait_for_apt waits until no other apt/dpkg run holds the package database.
wait_for_apt() {
	local waited=0
	if apt_busy; then
		log "another apt/dpkg run is in progress; waiting up to ${LOCK_WAIT}s for it"
	fi
	while apt_busy; do
		if [ "$waited" -ge "$LOCK_WAIT" ]; then
			log "apt/dpkg still busy after ${LOCK_WAIT}s; trying anyway"
			return 0
		fi
		sleep 2
		waited=$((waited + 2))
	done
}

# node runs announce.js's unit tests (node --test, with its mock timers:
# Node.js 20 or newer). This script does not install it (Debian's own
# package may be older): it says what is missing.
if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
	log "missing test dependency: node >= 20 (for clients/js's tests; have: $(node --version 2>/dev/null || echo none)); install Node.js 20 or newer from https://nodejs.org"
	exit 1
fi

missing="$(missing_packages)"
[ -z "$missing" ] && exit 0

# A background apt run may be installing exactly these packages right now:
# let it finish, then look again before doing anything ourselves.
if command -v pgrep >/dev/null 2>&1 && apt_busy; then
	wait_for_apt
	missing="$(missing_packages)"
	[ -z "$missing" ] && exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	log "missing test dependencies: ${missing}"
	log "install the Debian packages: sudo apt-get install -y ${missing}"
	exit 1
fi

log "installing ${missing} with apt-get"
export DEBIAN_FRONTEND=noninteractive
# DPkg::Lock::Timeout makes apt wait for the dpkg lock instead of failing.
apt_opts=(-o "DPkg::Lock::Timeout=${LOCK_WAIT}")
command -v pgrep >/dev/null 2>&1 && wait_for_apt
apt-get "${apt_opts[@]}" update -qq </dev/null
# shellcheck disable=SC2086 # $missing is a list of package names
apt-get "${apt_opts[@]}" install -y -qq $missing </dev/null

missing="$(missing_packages)"
if [ -n "$missing" ]; then
	log "still missing after apt-get install: ${missing}"
	exit 1
fi
log "installed test dependencies"
