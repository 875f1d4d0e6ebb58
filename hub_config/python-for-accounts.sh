#!/usr/bin/env bash
# Prints a Python >= 3.12 that the hub's unprivileged user accounts can run, given one.
#
# Each hub user's server runs as its own OS account (docs/hub.md), so the venv's Python
# must be executable by accounts other than root. A Python installed under a mode-0700
# home (pyenv under /root) is not: as root, this copies that installation once to
# /opt/stream0d/python-<version> and points its library path there (patchelf, from
# Debian), instead of opening /root to everyone. Not root: the Python is printed as is.
set -euo pipefail
python="$1"
if [ "$(id -u)" != 0 ] || runuser -u nobody -- "$python" -c '' 2>/dev/null; then
    command -v "$python"
    exit 0
fi
prefix=$("$python" -c 'import sys; print(sys.base_prefix)')
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
full=$("$python" -c 'import platform; print(platform.python_version())')
target=/opt/stream0d/python-$full
if [ ! -x "$target/bin/python$version" ] || ! runuser -u nobody -- "$target/bin/python$version" -c '' 2>/dev/null; then
    command -v patchelf >/dev/null || {
        echo "installing Debian's patchelf (to relocate $prefix for the hub's user accounts)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patchelf >/dev/null
    }
    echo "copying $prefix to $target: the hub's user accounts cannot run a Python under $(dirname "$prefix")" >&2
    rm -rf "$target.tmp"
    mkdir -p /opt/stream0d
    cp -a "$prefix" "$target.tmp"
    for exe in "$target.tmp"/bin/python"$version"; do
        patchelf --set-rpath '$ORIGIN/../lib' "$exe"
    done
    chmod -R a+rX "$target.tmp"
    rm -rf "$target"
    mv "$target.tmp" "$target"
fi
echo "$target/bin/python$version"
