#!/usr/bin/env bash
# The console's player library (server/console/vendor.py): hls.js as server/console/package-lock.json pins it, installed
# from the npm registry with `npm ci` (the tarball checked against the lock's integrity, no install scripts run) and its
# build and licence copied into server/console/static/vendor/ (ignored by git). Again only when the pins changed.
# Without npm, or when the registry cannot be reached, it says so and the console serves without playback (exit 0);
# TAMS_CI=1 makes that an error (CI's console tests need the player).
set -euo pipefail
cd "$(dirname "$0")/../server/console"
dest=static/vendor
mkdir -p "$dest"
exec 9>"$dest/.lock"  # CI sets up both dependency sets at once: one install at a time
flock 9
want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ -f "$dest/.installed" ] && [ "$(cat "$dest/.installed")" = "$want" ] && [ -f "$dest/hls.min.js" ]; then
  exit 0
fi
give_up() {
  echo "console-vendor: $1: the console will serve without its player" >&2
  [ "${TAMS_CI:-}" = 1 ] && exit 1
  exit 0
}
command -v npm >/dev/null 2>&1 || give_up "npm is not installed (Debian: apt-get install npm)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) || give_up "npm ci failed"
rm -f "$dest/.installed"
cp "$work/node_modules/hls.js/dist/hls.min.js" "$dest/hls.min.js"
cp "$work/node_modules/hls.js/LICENSE" "$dest/hls.js-LICENSE.txt"
version=$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' "$work/node_modules/hls.js/package.json" | head -1)
printf '{"hls.js": "%s"}\n' "$version" > "$dest/vendor.json"
echo "$want" > "$dest/.installed"
echo "console-vendor: hls.js $version installed in server/console/$dest" >&2
