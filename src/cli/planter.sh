#!/bin/sh
# The `planter` bin. Starts the CLI from its V8 startup snapshot
# (planter.snapshot.blob beside this file) when the build made one with the
# very node binary that is first on PATH, else as a plain script
# (planter.mjs, from V8's code cache). A blob only loads into the node
# binary (version, arch, V8 flags) that built it, so the build records that
# binary's identity (device, inode, size, mtime, ctime: a reinstalled or
# upgraded node differs) in planter.snapshot.key and this compares it with
# the node about to run. NODE_OPTIONS may change V8's flags, which a blob
# also depends on: then the plain script runs.
self=$0
# npm links the bin (node_modules/.bin/planter, <prefix>/bin/planter): find the real file.
while [ -h "$self" ]; do
  link=$(readlink "$self")
  case $link in
    /*) self=$link ;;
    *) self=${self%/*}/$link ;;
  esac
done
case $self in
  */*) dir=${self%/*} ;;
  *) dir=. ;;
esac
if [ -z "${NODE_OPTIONS:-}" ] && [ -r "$dir/planter.snapshot.blob" ] && [ -r "$dir/planter.snapshot.key" ] &&
  node=$(command -v node) && read -r key < "$dir/planter.snapshot.key" &&
  [ "$(stat -L -c '%d:%i:%s:%Y:%Z' "$node" 2>/dev/null)" = "$key" ]; then
  exec "$node" @SNAPSHOT_FLAGS@ --snapshot-blob "$dir/planter.snapshot.blob" -- "$@"
fi
exec node "$dir/planter.mjs" "$@"
