#!/usr/bin/env python3
"""Where the time of one averaging interaction goes, from a `perf record` profile.

Build the bench with debug info (the -O3 -march=native flags stay), record BM_interaction
with DWARF call graphs, then attribute each sample to (side, phase):

    cmake -S . -B /tmp/build-bench-g -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DSWARMSGD_BUILD_BENCH=ON -DSWARMSGD_BUILD_TESTS=OFF -DSWARMSGD_BUILD_EXAMPLES=OFF \
          -DCMAKE_CXX_FLAGS=-fno-omit-frame-pointer
    cmake --build /tmp/build-bench-g --target bench_averaging
    perf record -o /tmp/p.data -e cpu-clock -F 4000 --call-graph dwarf,16384 \
          /tmp/build-bench-g/bench/bench_averaging \
          --benchmark_filter='BM_interaction/1048576' --benchmark_min_time=1
    python3 bench/perf_phases.py /tmp/p.data

Sides: responder = frames under swarm_node::serve_request[_exact], initiator = under
swarm_node::initiate or swarm_node::complete.
Phases: the innermost library frame among
  - the fused path (identity quantizer, exact_reconstruction): copy_out_checked (copy_out:
    model -> snapshot + request payload), exchange_and_average (exchange: the responder's
    pass), first_non_finite_raw (check_raw), add_half_difference_raw (apply_raw);
  - the general path (any other quantizer, e.g. BM_interaction_general): gather,
    first_non_finite (check_finite), encode, decode, add_half_difference (apply);
  - in-process messaging.
Samples outside the timed loop (set-up, the warm-up interaction) are dropped. cpu-clock
sampling works inside VMs without hardware counters.
"""

import collections
import subprocess
import sys

PHASES = [  # innermost match wins; order matters only within one frame
    ("copy_out_checked", "copy_out"),
    ("exchange_and_average", "exchange"),
    ("first_non_finite_raw", "check_raw"),
    ("add_half_difference_raw", "apply_raw"),
    ("average_with_raw", "apply_raw"),
    ("add_half_difference", "apply"),
    ("apply_half_difference", "apply"),
    ("first_non_finite", "check_finite"),
    ("identity_quantizer<float>::decode", "decode"),
    ("identity_quantizer<float>::encode", "encode"),
    ("swarmsgd::gather", "gather"),
    ("try_receive", "message"),
    ("::isend", "message"),
    ("read_envelope", "message"),
    ("write_envelope", "message"),
]
# Helpers shared by several phases: their frames are skipped, the caller decides.
TRANSPARENT = ["first_non_finite_of", "load_raw", "store_raw", "non_finite_bit"]
SIDES = [
    ("::serve_request", "responder"),
    ("::initiate", "initiator/initiate"),
    ("::complete", "initiator/complete"),
]


def classify(frames):
    phase = None
    for f in frames:  # innermost first
        if any(t in f for t in TRANSPARENT):
            continue
        for needle, name in PHASES:
            if needle in f:
                phase = name
                break
        if phase:
            break
    side = None
    for f in frames:
        for needle, name in SIDES:
            if needle in f:
                side = name
                break
        if side:
            break
    return side, phase


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "perf.data"
    text = subprocess.run(
        ["perf", "script", "-i", data, "--inline", "-F", "ip,sym"],
        check=True, capture_output=True, text=True).stdout
    counts = collections.Counter()
    total = 0
    for block in text.split("\n\n"):
        frames = [line.strip() for line in block.strip().splitlines() if line.strip()]
        if not frames:
            continue
        joined = "\n".join(frames)
        if "node_pair::interact" in joined or "node_pair::node_pair" in joined:
            continue  # warm-up interaction and set-up
        if "random_model" in joined:
            continue
        side, phase = classify(frames)
        if side is None and phase is None:
            if "swarm_node" not in joined:
                continue  # not the library at all (benchmark framework, loader)
        if phase is None:
            leaf = frames[0].split(None, 1)[-1]
            phase = "kernel" if leaf.startswith(("exc_", "asm_", "_raw_", "do_", "__handle")) \
                else "other"
            if phase == "other" and "memcpy" in leaf:
                # gather() is inlined down to its memcpy call, whose only other callers in
                # these paths (encode, decode) keep their inline frames: a bare memcpy under
                # initiate or serve_request is the snapshot.
                phase = "gather" if side in ("responder", "initiator/initiate") \
                    else "memcpy(unattributed)"
        counts[(side or "unknown", phase)] += 1
        total += 1
    if total == 0:
        print("no samples attributed")
        return 1
    print(f"samples attributed: {total}")
    by_side = collections.Counter()
    by_phase = collections.Counter()
    for (side, phase), c in counts.items():
        by_side[side] += c
        by_phase[phase] += c
    print("\nby side, phase:")
    for (side, phase), c in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {side:20s} {phase:22s} {100.0 * c / total:6.1f}%")
    print("\nby side:")
    for side, c in by_side.most_common():
        print(f"  {side:20s} {100.0 * c / total:6.1f}%")
    print("\nby phase:")
    for phase, c in by_phase.most_common():
        print(f"  {phase:22s} {100.0 * c / total:6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
