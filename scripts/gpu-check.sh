#!/usr/bin/env bash
# The GPU check of docs/thrust.md in two halves, so that a GPU machine lent for minutes spends
# them running, not compiling:
#
#   scripts/gpu-check.sh build [DIR]   on any machine with nvcc (no GPU needed, about 15 min on
#                                      2 cores): builds the CUDA programs in build-gpu/ and
#                                      packs them, without debug information, with the
#                                      Fashion-MNIST files into DIR/bundle.tar.xz (DIR default
#                                      gpu-bin/, ignored by git; about 47 MiB, under the 64 MiB
#                                      that the device tool's `carry` takes)
#   scripts/gpu-check.sh run [DIR]     on the GPU machine, from the directory holding DIR
#                                      (e.g. the device tool with carry ["gpu-bin"]): unpacks
#                                      the bundle into $TMPDIR and runs the CUDA tests, the
#                                      device example, the GPU training example,
#                                      bench_device_cuda and compute-sanitizer; every log goes
#                                      to $OUT (default gpu-out/), a summary to stdout. Exits
#                                      non-zero when a step failed or found no GPU.
#
# The programs link the CUDA runtime statically: the GPU machine needs only the driver (and
# zlib, for the training example). Environment: CUDA_ARCH (default 90: H100 and H200),
# BENCH_SIZES (default 20,22,24,26,28), BENCH_SECONDS (default 0.2), EPOCHS (default 1).
set -uo pipefail

mode=${1:-}
dir=${2:-gpu-bin}
root=$(cd "$(dirname "$0")/.." && pwd)

programs=(test_thrust_cuda_errors test_thrust_adapter_cuda test_thrust_quantizers_cuda
          example_thrust_device_swarm_cuda fashion_mnist_device_swarm_cuda bench_device_cuda)

case "$mode" in
    build)
        set -e
        cmake -S "$root" -B "$root/build-gpu" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DSWARMSGD_BUILD_BENCH=ON -DSWARMSGD_CUDA_QUANTIZER_TESTS=ON \
            -DSWARMSGD_ENABLE_CUDA=ON -DSWARMSGD_TORCH=OFF \
            -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}"
        cmake --build "$root/build-gpu" -j "$(nproc)" --target "${programs[@]}"
        rm -rf "$dir" && mkdir -p "$dir/data"
        for p in "${programs[@]}"; do
            find "$root/build-gpu" -type f -name "$p" -perm -u+x -exec cp {} "$dir/" \;
            [[ -x "$dir/$p" ]] || { echo "gpu-check: $p was not built" >&2; exit 1; }
        done
        data=${SWARMSGD_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
        cp "$data"/*-ubyte.gz "$dir/data/"
        # One xz archive without debug information: the programs are mostly device code, and
        # what a `run` call may carry to the GPU machine is limited (64 MiB).
        strip --strip-debug "${programs[@]/#/$dir/}"
        tar -C "$dir" -cJf "$root/gpu-bundle.tar.xz" .
        rm -rf "$dir" && mkdir -p "$dir" && mv "$root/gpu-bundle.tar.xz" "$dir/bundle.tar.xz"
        du -sh "$dir/bundle.tar.xz"
        ;;
    run)
        out=${OUT:-gpu-out}
        mkdir -p "$out"
        if [[ -f "$dir/bundle.tar.xz" ]]; then
            unpacked=${TMPDIR:-/tmp}/swarmsgd-gpu-bin
            rm -rf "$unpacked" && mkdir -p "$unpacked"
            tar -C "$unpacked" -xJf "$dir/bundle.tar.xz" || { echo "gpu-check: bad bundle" >&2; exit 1; }
            dir=$unpacked
        fi
        export SWARMSGD_FASHION_MNIST_DIR="$dir/data"
        failed=0
        step() {  # step NAME COMMAND...: runs, logs to $out/NAME.log, reports
            local name=$1; shift
            local start=$SECONDS
            "$@" > "$out/$name.log" 2>&1
            local rc=$?
            local verdict=passed
            if [[ $rc -eq 77 ]]; then verdict="SKIPPED (no usable GPU)"; failed=1
            elif [[ $rc -ne 0 ]]; then verdict="FAILED (exit $rc)"; failed=1; fi
            echo "gpu-check: $name: $verdict in $((SECONDS - start)) s"
            tail -n 3 "$out/$name.log" | sed 's/^/    /'
        }
        export PATH="$PATH:/usr/local/cuda/bin"  # compute-sanitizer of a toolkit installed there
        if command -v nvidia-smi > /dev/null; then
            nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1
            cat "$out/gpu.txt"
        else
            echo "gpu-check: no nvidia-smi on this machine"
        fi
        step cuda_errors "$dir/test_thrust_cuda_errors"
        step adapter "$dir/test_thrust_adapter_cuda"
        step quantizers "$dir/test_thrust_quantizers_cuda"
        step device_example "$dir/example_thrust_device_swarm_cuda"
        train="$dir/fashion_mnist_device_swarm_cuda"
        step training "$train" --nodes 4 --epochs "${EPOCHS:-1}"
        step training_8nodes "$train" --nodes 8 --epochs "${EPOCHS:-1}"
        step training_identity "$train" --nodes 4 --epochs "${EPOCHS:-1}" --quantizer identity
        step bench "$dir/bench_device_cuda" --sizes="${BENCH_SIZES:-20,22,24,26,28}" \
            --seconds="${BENCH_SECONDS:-0.2}"
        grep -E '^(summary|transfer)' "$out/bench.log" | sed 's/^/    /'
        if command -v compute-sanitizer > /dev/null; then
            step memcheck_adapter compute-sanitizer --tool memcheck --leak-check full \
                --error-exitcode 1 "$dir/test_thrust_adapter_cuda"
            step memcheck_quantizers compute-sanitizer --tool memcheck --error-exitcode 1 \
                "$dir/test_thrust_quantizers_cuda" -tc="*min-max*,*lattice*,*fp16*"
            step memcheck_training compute-sanitizer --tool memcheck --error-exitcode 1 \
                "$train" --nodes 2 --epochs 0.02
        else
            echo "gpu-check: compute-sanitizer not found on this machine: memcheck not run"
        fi
        exit $failed
        ;;
    *)
        echo "usage: $0 build [DIR] | run [DIR]" >&2
        exit 2
        ;;
esac
