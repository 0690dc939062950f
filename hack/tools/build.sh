#!/usr/bin/env bash
# Builds one pinned tool into bin/, reusing what is already built.
#
#   hack/tools/build.sh OUT PACKAGE MODULE_DIR
#
# A binary already at OUT is kept. Otherwise a copy cached under
# ${KEELSON_TOOLS_CACHE:-$HOME/.cache/keelson/tools}/<hash of MODULE_DIR/go.sum>/
# is reused (so a fresh clone on the same machine does not rebuild), and only
# then is the tool built with `go build` and cached.
set -euo pipefail
out=$1 pkg=$2 moddir=$3
sum=$( (cat "$moddir/go.mod" "$moddir/go.sum"; echo "${GOFLAGS:-}") | sha256sum | cut -c1-16)
cache=${KEELSON_TOOLS_CACHE:-$HOME/.cache/keelson/tools}/$sum
name=$(basename "$out")
if [[ -x $out ]]; then
	if [[ ! -x $cache/$name ]]; then
		mkdir -p "$cache" && cp "$out" "$cache/$name.tmp" && mv "$cache/$name.tmp" "$cache/$name"
	fi
	exit 0
fi
mkdir -p "$(dirname "$out")"
if [[ -x $cache/$name ]]; then
	cp "$cache/$name" "$out.tmp" && mv "$out.tmp" "$out"
	echo "tools: $name reused from $cache"
	exit 0
fi
echo "tools: building $name from $pkg"
(cd "$moddir" && ${GO:-go} build -o "$out.tmp" "$pkg")
mv "$out.tmp" "$out"
mkdir -p "$cache"
cp "$out" "$cache/$name.tmp" && mv "$cache/$name.tmp" "$cache/$name"
