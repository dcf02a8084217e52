#!/usr/bin/env bash
# The package really works once installed: build, `npm pack`, install the
# tarball into a throwaway global prefix (as `npm install -g` would), start
# that installed planterd on a temp state dir and socket, and talk to it with
# the installed planter: `version`, then a cell and a job whose output comes
# back. Catches what the test suite cannot see from the source tree: a file
# missing from package.json's "files" (migrations, profiles, the CLI bundle),
# a wrong "bin" path, a dependency used at run time but only listed as a dev
# dependency. The daemon is stopped by its pid; nothing is left running and
# the temp dir is removed, whatever happens.
#   usage: scripts/pack-check.sh [--no-build]     (npm run pack-check)
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = "--no-build" ]; then build=0; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/planter-pack.XXXXXX")"
daemon_pid=""

cleanup() {
  local status=$?
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "pack check: FAILED: $*" >&2
  if [ -f "$work/planterd.log" ]; then
    echo "--- planterd's output:" >&2
    cat "$work/planterd.log" >&2
  fi
  exit 1
}

if [ "$build" = 1 ]; then
  npm run --silent build
fi

version="$(node -p 'require("./package.json").version')"
tarball="$(npm pack --silent --pack-destination "$work")"
tarball="$work/$tarball"
[ -f "$tarball" ] || fail "npm pack did not write $tarball"
# A startup snapshot only loads into the node binary that built it: the package ships its entry and the script
# that builds it where it is installed (postinstall), never the build's blob; and the wrapper must be there.
listing="$(tar tzf "$tarball")"
if grep -q -e 'planter\.snapshot\.' <<< "$listing"; then
  fail "the tarball contains the build's CLI startup snapshot"
fi
for shipped in dist/planter dist/planter-snapshot.cjs dist/planter-snapshot.flags scripts/cli-snapshot-blob.mjs; do
  grep -qx "package/$shipped" <<< "$listing" || fail "the tarball has no $shipped"
done
echo "pack check: packed $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB, $(tar tzf "$tarball" | wc -l) files)"

prefix="$work/prefix"
# The native dependencies (better-sqlite3, koffi, msgpackr-extract) need their
# install scripts, as they would for a user; --allow-scripts says so to npm
# versions that ask.
if ! npm install --global --prefix "$prefix" --no-audit --no-fund --loglevel=error \
  --allow-scripts=better-sqlite3,koffi,msgpackr-extract,@parcel/watcher \
  "$tarball" > "$work/install.log" 2>&1; then
  cat "$work/install.log" >&2
  fail "npm install of the tarball into $prefix failed"
fi
planter="$prefix/bin/planter"
planterd="$prefix/bin/planterd"
[ -x "$planter" ] || fail "the installed package has no bin/planter"
[ -x "$planterd" ] || fail "the installed package has no bin/planterd"
echo "pack check: installed into a temp prefix"
# The install built the CLI's startup snapshot for this node, which the wrapper starts from.
installed="$prefix/lib/node_modules/$(node -p 'require("./package.json").name')/dist"
[ -s "$installed/planter.snapshot.blob" ] || fail "the install built no CLI startup snapshot in $installed"
[ "$(cat "$installed/planter.snapshot.key")" = "$(stat -L -c '%d:%i:%s:%Y:%Z' "$(command -v node)")" ] ||
  fail "the installed CLI startup snapshot is not for the node on PATH"
echo "pack check: the install built the CLI's startup snapshot for $(node --version)"

state="$work/state"
socket="$work/planterd.sock"
# Started directly (no subshell in between), so $! is planterd's own pid.
"$planterd" --state-dir "$state" --socket "$socket" > "$work/planterd.log" 2>&1 &
daemon_pid=$!

# Wait for it to answer (it applies the packaged migrations before it listens).
answered=0
for _ in $(seq 1 100); do
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    wait "$daemon_pid" && code=0 || code=$?
    daemon_pid=""
    fail "the installed planterd exited with code $code before it listened"
  fi
  if [ -S "$socket" ] && "$planter" --socket "$socket" version > "$work/version.out" 2>&1; then
    answered=1
    break
  fi
  sleep 0.2
done
[ "$answered" = 1 ] || fail "the installed planterd did not answer on $socket within 20 s"

cat "$work/version.out"
grep -q "^planter $version " "$work/version.out" || fail "planter version does not report the package's version $version"
grep -q "^planterd $version " "$work/version.out" || fail "planterd did not answer version $version"

"$planter" --socket "$socket" create --name packcheck > /dev/null || fail "planter create failed"
out="$("$planter" --socket "$socket" run packcheck --wait -- echo "installed planter runs jobs")" ||
  fail "planter run --wait failed: $out"
case "$out" in
  *"installed planter runs jobs"*) echo "pack check: a job ran and its output came back" ;;
  *) fail "the job's output did not come back; got: $out" ;;
esac

# A graceful stop, by pid, and it must really end.
kill -TERM "$daemon_pid"
stopped=0
for _ in $(seq 1 100); do
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    stopped=1
    break
  fi
  sleep 0.1
done
[ "$stopped" = 1 ] || fail "planterd (pid $daemon_pid) did not stop within 10 s of SIGTERM"
wait "$daemon_pid" && code=0 || code=$?
daemon_pid=""
[ "$code" = 0 ] || fail "planterd exited with code $code after SIGTERM (expected 0)"
if [ -e "$socket" ]; then fail "planterd left its socket $socket behind"; fi

# Nothing started from the temp prefix may outlive the check.
leftover="$(ps -eo pid=,args= | grep -F "$work" | grep -v -e grep -e "pack-check" || true)"
[ -z "$leftover" ] || fail "processes left running: $leftover"

echo "pack check: ok (planterd $version installed from the tarball, started, answered and stopped)"
