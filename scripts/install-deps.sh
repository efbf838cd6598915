#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages swarmsgd's build, tests, demo and benchmarks need.
# Idempotent: only missing packages are installed (apt-get update runs only if some are).
# Runs apt-get as root, or through sudo when not root.
set -euo pipefail

PACKAGES=(
    build-essential cmake ninja-build ccache g++ clang libclang-rt-14-dev
    libeigen3-dev doctest-dev libbenchmark-dev zlib1g-dev
    dataset-fashion-mnist gnuplot-nox libopenmpi-dev openmpi-bin mpich libmpich-dev
    libthrust-dev libcub-dev iproute2 python3 libtorch-dev
)
# `install-deps.sh --bench` adds what only the benchmarks need: PyTorch (Debian's python3-torch,
# run as /usr/bin/python3) and NumPy for bench/bench_resnet_throughput.py and
# bench/ddp_resnet20.py.
if [[ ${1:-} == --bench ]]; then
    PACKAGES+=(python3-torch python3-numpy)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: apt-get not found; please install: ${missing[*]}" >&2
    exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-deps: not root and sudo not available; please install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-deps: done"
