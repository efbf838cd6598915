#!/usr/bin/env bash
# Full test run (also what CI runs through .ci/run). Stages:
#   normal  g++ RelWithDebInfo in build-test/: tests + examples, all ctest tests
#           (unit, failtest, consumer, examples, mpi with the default MPI: Open MPI, torch:
#           the LibTorch adapter, SWARMSGD_TORCH=ON since install-deps.sh installs it)
#   mpich   the MPI tests again, built and run against MPICH, in build-mpich/
#   asan    clang++ with -fsanitize=address,undefined in build-asan/: ctest -L unit
#   tsan    clang++ with -fsanitize=thread in build-tsan/: ctest -L concurrency
#   fuzz    clang++ libFuzzer targets (-fsanitize=fuzzer,address,undefined) in build-fuzz/:
#           ctest -L fuzz, SWARMSGD_FUZZ_RUNS inputs per target (default 100000)
# Choose stages with SWARMSGD_TEST_STAGES (default "normal mpich asan tsan fuzz"), e.g.
#   SWARMSGD_TEST_STAGES=normal scripts/test.sh
# Other knobs: SWARMSGD_JOBS (default nproc), SWARMSGD_SKIP_DEPS=1 (skip install-deps.sh),
#   SWARMSGD_FUZZ_RUNS (inputs per fuzz target),
#   CTEST_ARGS (extra ctest arguments, e.g. "-R rng").
set -euo pipefail
cd "$(dirname "$0")/.."

STAGES=${SWARMSGD_TEST_STAGES:-normal mpich asan tsan fuzz}
JOBS=${SWARMSGD_JOBS:-$(nproc 2>/dev/null || echo 2)}
read -r -a EXTRA_CTEST_ARGS <<<"${CTEST_ARGS:-}"

for stage in $STAGES; do
    case $stage in
        normal | mpich | asan | tsan | fuzz) ;;
        *) echo "test.sh: unknown stage '$stage' (known: normal mpich asan tsan fuzz)" >&2; exit 2 ;;
    esac
done

if [[ ${SWARMSGD_SKIP_DEPS:-0} != 1 ]]; then
    bash scripts/install-deps.sh
fi

# ccache is picked up automatically by CMakeLists.txt (CMAKE_CXX_COMPILER_LAUNCHER) when installed.

# Sanitizer runtime options: stop at the first report, with stacks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:halt_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

START=$SECONDS
declare -a SUMMARY=()
CURRENT_STAGE=""
on_exit() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        echo
        echo "==== swarmsgd test.sh: FAILED in stage '${CURRENT_STAGE:-setup}' (exit $rc) after $((SECONDS - START))s ===="
        for line in "${SUMMARY[@]}"; do echo "  $line"; done
    fi
}
trap on_exit EXIT

banner() { echo; echo "==== $* ===="; }

# TSan in clang 14 cannot map its shadow memory with the high ASLR entropy newer kernels use
# (vm.mmap_rnd_bits > 28): run the TSan tests without ASLR then.
maybe_no_aslr() {
    local bits
    bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
    if [[ $bits -gt 28 ]] && command -v setarch >/dev/null 2>&1; then
        echo setarch "$(uname -m)" -R
    fi
}

run_stage() {
    local stage=$1 t0=$SECONDS
    CURRENT_STAGE=$stage
    case $stage in
        normal)
            banner "stage normal: g++ RelWithDebInfo, build-test/, all tests"
            cmake -S . -B build-test -G Ninja \
                -DCMAKE_CXX_COMPILER="${SWARMSGD_CXX:-g++}" \
                -DCMAKE_BUILD_TYPE=RelWithDebInfo \
                -DSWARMSGD_BUILD_TESTS=ON -DSWARMSGD_BUILD_EXAMPLES=ON -DSWARMSGD_SANITIZE= \
                -DSWARMSGD_TORCH="${SWARMSGD_TORCH:-ON}"
            cmake --build build-test -j "$JOBS"
            ctest --test-dir build-test --output-on-failure -j "$JOBS" --no-tests=error \
                "${EXTRA_CTEST_ARGS[@]}"
            ;;
        asan)
            banner "stage asan: clang++ -fsanitize=address,undefined, build-asan/, label unit"
            # -O1 -g without NDEBUG: asserts on, reasonable speed under the sanitizers.
            cmake -S . -B build-asan -G Ninja \
                -DCMAKE_CXX_COMPILER=clang++ \
                -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
                -DSWARMSGD_BUILD_TESTS=ON -DSWARMSGD_BUILD_EXAMPLES=OFF \
                -DSWARMSGD_SANITIZE=address,undefined -DSWARMSGD_TORCH=OFF
            cmake --build build-asan --target swarmsgd_unit_tests -j "$JOBS"
            ctest --test-dir build-asan --output-on-failure -j "$JOBS" -L unit --no-tests=error \
                "${EXTRA_CTEST_ARGS[@]}"
            ;;
        mpich)
            # The normal stage runs the MPI tests with the default MPI (Open MPI on Debian);
            # this one builds and runs them again against MPICH.
            banner "stage mpich: MPI tests built with mpicxx.mpich, run with mpiexec.mpich"
            cmake -S . -B build-mpich -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
                -DSWARMSGD_BUILD_TESTS=ON -DSWARMSGD_BUILD_EXAMPLES=OFF \
                -DMPI_CXX_COMPILER=mpicxx.mpich -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.mpich \
                -DSWARMSGD_TORCH=OFF
            cmake --build build-mpich --target swarmsgd_mpi_tests -j "$JOBS"
            ctest --test-dir build-mpich --output-on-failure -j "$JOBS" -L mpi \
                --no-tests=error "${EXTRA_CTEST_ARGS[@]}"
            ;;
        tsan)
            banner "stage tsan: clang++ -fsanitize=thread, build-tsan/, label concurrency"
            cmake -S . -B build-tsan -G Ninja \
                -DCMAKE_CXX_COMPILER=clang++ \
                -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
                -DSWARMSGD_BUILD_TESTS=ON -DSWARMSGD_BUILD_EXAMPLES=OFF \
                -DSWARMSGD_SANITIZE=thread -DSWARMSGD_TORCH=OFF
            cmake --build build-tsan --target swarmsgd_concurrency_tests -j "$JOBS"
            local -a prefix
            read -r -a prefix <<<"$(maybe_no_aslr)"
            "${prefix[@]}" ctest --test-dir build-tsan --output-on-failure -j "$JOBS" \
                -L concurrency --no-tests=ignore "${EXTRA_CTEST_ARGS[@]}"
            ;;
        fuzz)
            banner "stage fuzz: clang++ libFuzzer + ASan + UBSan, build-fuzz/, label fuzz"
            # -O2: the optimized loops users run; each target runs a fixed number of inputs from
            # its generated seed corpus with a fixed seed (see tests/fuzz/run_fuzzer.cmake).
            cmake -S . -B build-fuzz -G Ninja \
                -DCMAKE_CXX_COMPILER=clang++ \
                -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g" \
                -DSWARMSGD_BUILD_TESTS=ON -DSWARMSGD_BUILD_EXAMPLES=OFF -DSWARMSGD_SANITIZE= \
                -DSWARMSGD_BUILD_FUZZERS=ON -DSWARMSGD_FUZZ_RUNS="${SWARMSGD_FUZZ_RUNS:-100000}" \
                -DSWARMSGD_TORCH=OFF
            cmake --build build-fuzz --target swarmsgd_fuzzers -j "$JOBS"
            ctest --test-dir build-fuzz --output-on-failure -j "$JOBS" -L fuzz --no-tests=error \
                "${EXTRA_CTEST_ARGS[@]}"
            ;;
    esac
    SUMMARY+=("$stage: passed in $((SECONDS - t0))s")
}

for stage in $STAGES; do
    run_stage "$stage"
done

CURRENT_STAGE=""
echo
echo "==== swarmsgd test.sh: ALL PASSED (stages: $STAGES) in $((SECONDS - START))s ===="
for line in "${SUMMARY[@]}"; do echo "  $line"; done
