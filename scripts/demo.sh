#!/usr/bin/env bash
# Quick start: installs the dependencies, builds the ResNet Swarm SGD example (Release) and
# runs a short training: ResNet-20 on Fashion-MNIST, 8 in-process nodes averaging with the
# 8-bit lattice quantizer. It ends with the test accuracy of the mean model and of node 0 and
# a PNG plot of the per-epoch curves. Arguments are passed on to resnet_swarm and override the
# demo's defaults:
#   scripts/demo.sh [resnet_swarm options...]      e.g. scripts/demo.sh --epochs 2 --quantizer fp16
# The earlier MLP demo (seconds instead of minutes):
#   SWARMSGD_DEMO=mlp scripts/demo.sh [fashion_mnist_swarm options...]
# Knobs: SWARMSGD_DEMO_BUILD_DIR (default build), SWARMSGD_JOBS (default nproc),
#        SWARMSGD_FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

BUILD_DIR=${SWARMSGD_DEMO_BUILD_DIR:-build}
JOBS=${SWARMSGD_JOBS:-$(nproc 2>/dev/null || echo 2)}
DEMO=${SWARMSGD_DEMO:-resnet}

case $DEMO in
    resnet) target=resnet_swarm ;;
    mlp) target=fashion_mnist_swarm ;;
    *) echo "demo: unknown SWARMSGD_DEMO='$DEMO' (expected resnet or mlp)" >&2; exit 2 ;;
esac

cmake -S . -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DSWARMSGD_BUILD_EXAMPLES=ON \
    -DSWARMSGD_BUILD_TESTS=OFF \
    -DSWARMSGD_BUILD_BENCH=OFF
cmake --build "$BUILD_DIR" --target "$target" -j "$JOBS"

exe=$(find "$BUILD_DIR/examples" -type f -name "$target" -perm -u+x | head -n 1)
if [[ -z "$exe" || ! -x "$exe" ]]; then
    echo "demo: $target was not built (it needs Eigen: apt-get install libeigen3-dev)" >&2
    exit 1
fi

if [[ $DEMO == mlp ]]; then
    echo "demo: running $exe $*"
    exec "$exe" "$@"
fi

# Two passes over the 60000 training images, evaluated on the 10000 test images after each;
# batch 32 per node gives each node 469 steps in that budget. About 2.5 minutes of training on
# an idle 2-core VM, 5 to 6 on a busy one (docs/resnet.md).
defaults=(--dataset fashion-mnist --nodes 8 --depth 20 --quantizer lattice8
          --epochs 2 --batch 32 --lr 0.05
          --csv "$BUILD_DIR/resnet_demo.csv" --plot "$BUILD_DIR/resnet_demo.png")
echo "demo: running $exe ${defaults[*]} $*"
exec "$exe" "${defaults[@]}" "$@"
