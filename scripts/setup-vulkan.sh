#!/usr/bin/env bash
# A Vulkan driver for the wgpu backend: the GPU machine's own driver where
# there is one, else Mesa's lavapipe (Vulkan on the CPU), so that the wgpu
# training path is tested on every machine. Debian bookworm packages, pinned.
set -euo pipefail
MESA=22.3.6-1+deb12u1
LOADER=1.3.239.0-1
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if installed mesa-vulkan-drivers && installed libvulkan1; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "setup-vulkan: no apt-get; install a Vulkan driver (lavapipe) by hand" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
if ! $SUDO apt-get install -y -qq --no-install-recommends \
    "mesa-vulkan-drivers=$MESA" "libvulkan1=$LOADER" >/dev/null; then
    # A Debian point release replaces old package versions in the archive.
    echo "setup-vulkan: pinned versions gone from the archive; installing the current ones" >&2
    $SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
fi
