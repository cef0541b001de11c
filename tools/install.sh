#!/usr/bin/env bash
# Install mmdidb and what it needs on a fresh machine (Debian/Ubuntu, Python 3.9+).
# Usage: bash tools/install.sh [EXTRAS]   e.g. `bash tools/install.sh tests`
#   TORCH_SPEC   the torch requirement to install first (default: the CPU build
#                torch==2.13.0 that this project's machines keep on local disk;
#                set e.g. TORCH_SPEC='torch==2.14.1' for a CUDA build)
#   TORCHVISION_SPEC  likewise (default torchvision==0.28.0, matching 2.13.0)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${1:-}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCHVISION_SPEC=${TORCHVISION_SPEC:-torchvision==0.28.0}
PIP="python3 -m pip install --disable-pip-version-check -q"

# The quick start's data: real Fashion-MNIST from Debian's package.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

# torch first, pinned: left to itself pip would pull a multi-GB CUDA build.
$PIP "$TORCH_SPEC" "$TORCHVISION_SPEC"
if [ -n "$EXTRAS" ]; then
    $PIP -e ".[$EXTRAS]"
else
    $PIP -e .
fi
python3 -c "import mmdidb, mmpretrain, mmseg; print('mmdidb', mmdidb.__version__, 'installed')"
