#!/usr/bin/env bash
# Repeats the MPI chaos tests (failure_policy::exclude under faults, tests/CMakeLists.txt
# mpi_chaos_*) with other seeds, outside CI, and counts the outcomes:
#   scripts/chaos.sh [runs (20)] [build dir (build-test)]
# Each seed draws other faulty ranks and another fault step. A hang is a run that
# tests/mpi/expect_survivors.cmake stopped after 100 s. Logs of failed runs: /tmp/chaos-<fault>-<seed>.log
set -euo pipefail
runs=${1:-20}
build=${2:-build-test}
for test in $(ctest --test-dir "$build" -N -R '^mpi_chaos_' | sed -n 's/.*Test *#[0-9]*: \(mpi_chaos_[a-z0-9_]*\).*/\1/p'); do
    pass=0 fail=0 hung=0 slowest=0
    for seed in $(seq 1 "$runs"); do
        if out=$(SWARMSGD_CHAOS_SEED=$seed ctest --test-dir "$build" -R "^${test}\$" -V 2>&1); then
            pass=$((pass + 1))
            ms=$(sed -n 's/.*the last \([0-9]*\) ms after the fault.*/\1/p' <<<"$out" | tail -1)
            if [ -n "$ms" ] && [ "$ms" -gt "$slowest" ]; then slowest=$ms; fi
        else
            if grep -q "the job hung" <<<"$out"; then hung=$((hung + 1)); else fail=$((fail + 1)); fi
            printf '%s\n' "$out" > "/tmp/chaos-${test}-${seed}.log"
        fi
    done
    echo "$test: $pass passed, $fail failed, $hung hung of $runs runs; slowest survivor ended finish() ${slowest} ms after the fault"
done
