#!/usr/bin/env python3
"""Calibrates the timed simulator on the emulated-network runs and checks its predictions.

Reads results.json of bench/emulated_network_runs.py and sets the simulator's cost model from
the runs at the FIRST (fastest) rate only; then predicts every run at every rate with
examples/experiments/time_to_accuracy --model timing (the library's node code on the timed
network, zero gradients: only times) and compares with what was measured.

The cost model, per algorithm, from its run at the first rate:
  compute   the ranks share --cores cores (processor sharing; 2 here: 4 ranks on 2 cores):
            the time of a step computed alone is fitted so that the simulated run at the first
            rate computes for the measured time per step (there the ranks compute together,
            so a step takes about twice that) -> --step-seconds and --cores. DDP keeps its
            measured (shared) step time on a core per rank (--cores 0): its measured compute
            time per step does not fall on slower links (gloo's threads keep the cores busy
            while it communicates). --cores 0 gives the model without sharing for everyone;
  latency   allreduce SGD and DDP: alpha such that their measured synchronization time per
            step = 2 (n - 1) alpha + the ring's transmission on the shared link; the others
            use allreduce SGD's alpha -> --latency;
  CPU/byte  Swarm SGD: its measured communicating time per byte sent -> --local-seconds-per-byte
            (the others: 0, their handling of bytes is inside the alpha fitted to their own
            synchronization time);
  link      one shared link (the namespace's loopback) at the rate x --efficiency (TCP/IP and
            the token bucket: the measured aggregate of 4 flows was 98.3% of 100 Mbit/s).
DDP is predicted as allreduce SGD with its own compute time and alpha. The allreduce is the
simulated ring of messages (--allreduce ring), not the simulator's native collective: a real
allreduce completes on the ranks at different times, as the ring does, so their next steps
overlap less on the shared cores; the native collective completes everywhere at once.

What is predicted: the time of the evaluation boundary at which the measured run first reached
each target (how many epochs a run needs is the measurement; how long they take is the
prediction), and the time of the whole budget. Prints a table and one line per run:
  calibration rate=<r> algorithm=<a> measured_to_90=<s> predicted_to_90=<s> error=<%> ...

  bench/calibrate_emulated.py --results build-rel/emulated/results.json \
      --binary build-rel/examples/experiments/time_to_accuracy [--out build-rel/emulated]
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys

SIMULATED = {"allreduce": "allreduce", "ddp": "allreduce", "swarm-lattice8": "swarm-lattice8-h2",
             "swarm-fp32": "swarm-fp32-h2"}


def bits_per_second(rate):
    m = re.fullmatch(r"([\d.]+)([kmg]?)bit", rate)
    if not m:
        raise SystemExit(f"calibrate_emulated: cannot read rate {rate!r}")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]


def ring_transmission(params, n, bandwidth):
    """Seconds a ring allreduce of params floats spends transmitting on one shared link."""
    chunk = 4 * -(-params // n) + 64  # a chunk and its envelope and header (about)
    return 2 * (n - 1) * n * chunk / bandwidth


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True)
    p.add_argument("--binary", required=True, help="examples/experiments/time_to_accuracy")
    p.add_argument("--out", default=None, help="where calibration.md goes (results' folder)")
    p.add_argument("--params", type=int, default=273754, help="model floats (ResNet-20, 1x28x28)")
    p.add_argument("--train-count", type=int, default=60000)
    p.add_argument("--efficiency", type=float, default=0.98)
    p.add_argument("--cores", type=int, default=2,
                   help="cores the ranks shared (0: a core per rank, the step time as measured)")
    a = p.parse_args()
    out = a.out or os.path.dirname(os.path.abspath(a.results))
    with open(a.results) as f:
        raw = json.load(f)
    runs = {tuple(k.split(" ")): v for k, v in raw.items()}
    rates = list(dict.fromkeys(k[0] for k in runs))
    algorithms = list(dict.fromkeys(k[1] for k in runs))
    base = rates[0]
    first = runs[(base, algorithms[0])]
    n = len(first["ranks"])
    steps = first["ranks"][0]["steps"]
    epochs = first["rows"][-1]["epoch"]
    batch = round(a.train_count * epochs / (steps * n))

    def alpha_of(alg):
        r = runs[(base, alg)]
        bw = bits_per_second(base) / 8 * a.efficiency
        return max((r["sync_per_step"] - ring_transmission(a.params, n, bw)) / (2 * (n - 1)),
                   1e-6)
    alphas = {alg: alpha_of(alg) for alg in ("allreduce", "ddp") if (base, alg) in runs}
    per_byte = 2e-10
    for alg in ("swarm-fp32", "swarm-lattice8"):
        r = runs.get((base, alg))
        if r and r["bytes_per_rank"]:
            per_byte = sum(t["communicate"] for t in r["ranks"]) / n / r["bytes_per_rank"]
            break
    print(f"calibration at {base}: alpha allreduce {alphas.get('allreduce', 0) * 1e3:.3f} ms, "
          f"ddp {alphas.get('ddp', 0) * 1e3:.3f} ms; CPU {per_byte * 1e9:.3f} ns per wire byte")

    def simulate(rate, alg, step, cores, csv_path):
        """Runs the timed simulator for one run; returns its summary line's fields."""
        sim_alg = SIMULATED.get(alg, alg)
        cmd = [a.binary, "--model", "timing", "--params", str(a.params),
               "--train-count", str(a.train_count), "--nodes", str(n), "--batch", str(batch),
               "--epochs", str(epochs), "--eval-every", "0.25", "--step-seconds", str(step),
               "--cores", str(cores), "--allreduce", "ring",
               "--bandwidth", str(bits_per_second(rate) / 8 * a.efficiency),
               "--links", "shared", "--latency", str(alphas.get(alg, alphas["allreduce"])),
               "--local-seconds-per-byte", str(per_byte if alg.startswith("swarm") else 0),
               "--topology", "ring",
               "--warmup-epochs", "0", "--algorithms", sim_alg, "--csv", csv_path]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("summary ") and f" algorithm={sim_alg} " in line:
                return dict(kv.split("=", 1) for kv in line.split()[1:])
        raise SystemExit(f"calibrate_emulated: no summary for {sim_alg} in: {' '.join(cmd)}")

    # The step time alone: fitted at the first rate (a fixed point, 4 tries at most).
    solo, cores_of = {}, {}
    for alg in algorithms:
        measured = runs[(base, alg)]["compute_per_step"]
        cores_of[alg] = 0 if (a.cores == 0 or alg == "ddp") else a.cores
        if cores_of[alg] == 0:
            solo[alg] = measured
            continue
        step = measured * min(a.cores, n) / n
        for _ in range(4):
            row = simulate(base, alg, step, cores_of[alg], os.path.join(out, "fit.csv"))
            predicted = float(row["seconds"]) * (1 - float(row["sync_share"])) / steps
            if abs(predicted / measured - 1) < 0.002:
                break
            step *= measured / predicted
        solo[alg] = step
    print("step time alone: " + ", ".join(f"{alg} {solo[alg] * 1e3:.1f} ms"
                                          f"{' (shared cores)' if cores_of[alg] else ''}"
                                          for alg in algorithms))

    lines, table = [], []
    for rate in rates:
        for alg in algorithms:
            measured = runs[(rate, alg)]
            sim_alg = SIMULATED.get(alg, alg)
            csv_path = os.path.join(out, f"predict_{rate}_{alg}.csv")
            simulate(rate, alg, solo[alg], cores_of[alg], csv_path)
            with open(csv_path) as f:
                predicted = [(float(r["epoch"]), float(r["seconds"]))
                             for r in csv.DictReader(f) if r["algorithm"] == sim_alg]

            def at(epoch):  # the simulated time at the evaluation nearest to `epoch`
                return min(predicted, key=lambda x: abs(x[0] - epoch))[1]

            cells = []
            for target in (0.88, 0.90):
                hit = next((r for r in measured["rows"] if r["acc"] >= target), None)
                if hit is None:
                    cells.append((None, None))
                else:
                    cells.append((hit["seconds"], at(hit["epoch"])))
            total = (measured["rows"][-1]["seconds"], at(measured["rows"][-1]["epoch"]))
            cells.append(total)
            errors = [None if m is None else 100 * (pr / m - 1) for m, pr in cells]
            kind = "projected" if measured.get("projected") else "measured"
            lines.append(
                f"calibration rate={rate} algorithm={alg} {kind}_to_90="
                f"{cells[1][0] if cells[1][0] is None else round(cells[1][0], 1)} "
                f"predicted_to_90={cells[1][1] if cells[1][1] is None else round(cells[1][1], 1)}"
                f" error_to_90={'none' if errors[1] is None else f'{errors[1]:+.1f}%'} "
                f"budget_measured={total[0]:.1f} budget_predicted={total[1]:.1f} "
                f"error_budget={errors[2]:+.1f}%")
            fmt = lambda c, e: "-" if c[0] is None else f"{c[0]:.0f} / {c[1]:.0f} s ({e:+.0f}%)"
            table.append(f"| {rate} | {alg}{' (projected)' if kind == 'projected' else ''} | "
                         + " | ".join(fmt(c, e) for c, e in zip(cells, errors)) + " |")
    for line in lines:
        print(line)
    with open(os.path.join(out, "calibration.md"), "w") as f:
        f.write(f"Calibrated at {base}: {a.cores or 'a core per rank'}"
                f"{' shared cores' if a.cores else ''}; step time alone "
                + ", ".join(f"{alg} {solo[alg] * 1e3:.1f} ms" for alg in algorithms)
                + f"; alpha (allreduce SGD) = "
                f"{alphas.get('allreduce', 0) * 1e3:.3f} ms, alpha (DDP) = "
                f"{alphas.get('ddp', 0) * 1e3:.3f} ms, CPU per wire byte = {per_byte * 1e9:.3f} ns, "
                f"link efficiency {a.efficiency}\n\n")
        f.write("| rate | algorithm | to 88%: measured / predicted | to 90% | whole budget |\n")
        f.write("|---|---|---:|---:|---:|\n")
        f.write("\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
