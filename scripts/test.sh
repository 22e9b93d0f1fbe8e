#!/usr/bin/env bash
# The test command (README "Test it"; .ci/run runs exactly this): installs the Debian packages the
# suite starts or checks with, when missing, then a clean install and `npm test`, whose exit code
# is this script's. Needs Node.js with npm (package.json "engines") and Debian's apt-get.
#
#   scripts/test.sh           install what is missing, npm ci, npm test
#   scripts/test.sh --check   only say which packages are missing: exit 0 when none, 1 otherwise
#
# TIDINGS_SYSTEM_ROOT (tests only) is put before every absolute path checked below, so a test can
# point the checks at a directory of its own.
set -euo pipefail
here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
cd "$here/.."

mode=${1:-}
case $mode in
  '' | --check) ;;
  *)
    echo "usage: scripts/test.sh [--check]" >&2
    exit 64
    ;;
esac

root=${TIDINGS_SYSTEM_ROOT:-}
missing=()
# need BINARY PACKAGE: the tests run BINARY (a path, which must be executable, or a name looked up
# on PATH), which Debian's PACKAGE installs. test/test-command.test.ts fails when the tests run a
# binary that has no `need` line here.
need() {
  if [[ $1 == /* ]]; then
    [[ -x $root$1 ]] && return 0
  else
    command -v "$1" >/dev/null 2>&1 && return 0
  fi
  missing+=("$2")
}

# Integration tests start their own redis-server processes on free ports (never the machine's 6379).
need redis-server redis-server
# The RabbitMQ ingress tests start their own broker nodes with Debian's script (never the machine's 5672).
need /usr/lib/rabbitmq/bin/rabbitmq-server rabbitmq-server
# The web app and the client's React hooks are tested in Debian's Chromium; no browser is downloaded.
need "${CHROMIUM_PATH:-/usr/bin/chromium}" chromium
# The deployment test checks deploy/nginx.conf with Debian's `nginx -t`.
need /usr/sbin/nginx nginx
# The alert rules are checked and unit-tested with `promtool`.
need promtool prometheus
# The deployment test asks `git check-ignore` what the Docker build context leaves out.
need git git

if [[ $mode == --check ]]; then
  if ((${#missing[@]})); then
    echo "missing: ${missing[*]}"
    exit 1
  fi
  echo "missing: none"
  exit 0
fi

# Node.js and npm cannot come from apt-get here: Debian's may be older than the project needs.
wanted_node=$(sed -n 's/^ *"node": *">= *\([0-9.]*\)".*/\1/p' package.json)
node_is_new_enough() {
  node -e '
    const [have, want] = process.argv.slice(1).map((version) => version.split(".").map(Number));
    const older = want.findIndex((part, index) => (have[index] ?? 0) !== part);
    process.exit(older === -1 || have[older] > want[older] ? 0 : 1);
  ' "$(node -p process.versions.node)" "$wanted_node"
}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1 || ! node_is_new_enough; then
  echo "scripts/test.sh: needs Node.js ${wanted_node} or newer with npm on PATH (package.json \"engines\"); found: $(node --version 2>/dev/null || echo 'no node')" >&2
  exit 1
fi

if ((${#missing[@]})); then
  as_root=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
      # Without a terminal to ask for a password on, sudo must not wait for one.
      if [[ -t 0 ]]; then as_root=(sudo); else as_root=(sudo -n); fi
    else
      as_root=(unavailable)
    fi
  fi
  how="apt-get install ${missing[*]}"
  if [[ ${as_root[0]:-} == unavailable ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: the tests need these Debian packages: ${missing[*]}. Install them as root (${how}) and run scripts/test.sh again." >&2
    exit 1
  fi
  echo "scripts/test.sh: installing ${missing[*]} with ${as_root[*]:+${as_root[*]} }apt-get" >&2
  if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
    echo "scripts/test.sh: could not install ${missing[*]}. Install them as root (${how}) and run scripts/test.sh again." >&2
    exit 1
  fi
fi

npm ci --no-audit --no-fund
exec npm test
