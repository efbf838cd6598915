#!/usr/bin/env bash
# Quick start: installs the dependencies, builds the Fashion-MNIST Swarm SGD demo (Release) and
# runs it. Arguments are passed on to the demo:
#   scripts/demo.sh [demo options...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

BUILD_DIR=${SWARMSGD_DEMO_BUILD_DIR:-build}
JOBS=${SWARMSGD_JOBS:-$(nproc 2>/dev/null || echo 2)}

cmake -S . -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DSWARMSGD_BUILD_EXAMPLES=ON \
    -DSWARMSGD_BUILD_TESTS=OFF \
    -DSWARMSGD_BUILD_BENCH=OFF
cmake --build "$BUILD_DIR" --target fashion_mnist_swarm -j "$JOBS"

exe="$BUILD_DIR/examples/fashion_mnist/fashion_mnist_swarm"
if [[ ! -x "$exe" ]]; then
    # The example may set its own output directory; find the executable wherever it went.
    exe=$(find "$BUILD_DIR" -type f -name fashion_mnist_swarm -perm -u+x | head -n 1)
fi
if [[ -z "$exe" || ! -x "$exe" ]]; then
    echo "demo: fashion_mnist_swarm was not built" >&2
    exit 1
fi
echo "demo: running $exe $*"
exec "$exe" "$@"
