#!/usr/bin/env python3
"""The time-to-accuracy sweep of docs/experiments.md, on the timed simulator (outside CI).

Runs examples/experiments/time_to_accuracy (Swarm SGD against allreduce SGD, local SGD, D-PSGD
and AD-PSGD, an MLP on Fashion-MNIST) in three phases:

1. tune:  for every n, every algorithm gets the same budget of learning rates (--lrs), at
          ratio 1 without stragglers; per (n, algorithm) the rate that reaches the target
          soonest is kept (ties and runs that never reach it: the best final accuracy).
2. sweep: every n x ratio x straggler setting, each algorithm with its tuned rate.
3. report: tables.md (markdown tables) and PNG plots (gnuplot): accuracy against simulated
          time, speedup over allreduce against n, synchronization share against n.

Every invocation of the program runs allreduce SGD first and prints one `summary` line per
algorithm; all of them are collected in summary.txt. Usage:

    bench/time_to_accuracy.py --binary build-rel/examples/experiments/time_to_accuracy \
        --out build-rel/experiments [--nodes 16,64,256,1024] [--jobs 2]
"""
import argparse
import collections
import concurrent.futures
import itertools
import math
import os
import re
import shutil
import subprocess
import sys

ALGORITHMS = [
    "swarm-fp32-h1", "swarm-fp32-h2", "swarm-fp32-h4",
    "swarm-lattice8-h1", "swarm-lattice8-h2", "swarm-lattice8-h4",
    "local-h4", "dpsgd", "ad-psgd",
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True, help="the time_to_accuracy executable")
    p.add_argument("--out", required=True, help="directory for logs, CSVs, tables and plots")
    p.add_argument("--nodes", default="16,64,256,1024")
    p.add_argument("--ratios", default="0.1,1,10")
    p.add_argument("--stragglers", default="0,0.1")
    p.add_argument("--slowdown", default="4")
    p.add_argument("--lrs", default="0.025,0.05,0.1,0.2,0.4",
                   help="the tuning budget: the same learning rates for every algorithm")
    p.add_argument("--algorithms", default=",".join(ALGORITHMS))
    p.add_argument("--algorithms-at", default="",
                   help="a smaller algorithm list for some n, e.g. '1024:swarm-lattice8-h1,dpsgd'")
    p.add_argument("--epochs", default="16:6,64:10,256:20,1024:40",
                   help="epoch budget per n (n:epochs,...): the same for every algorithm; the "
                        "learning-rate warm-up is its first 10%%")
    p.add_argument("--targets", default="16:0.84,64:0.83,256:0.80,1024:0.78",
                   help="target test accuracy per n (n:accuracy,...): a little below what tuned "
                        "allreduce SGD reaches within the budget")
    p.add_argument("--evaluations", type=int, default=60,
                   help="evaluations of the mean model over the budget (time-to-target "
                        "resolution)")
    p.add_argument("--extra", default="--hidden 32", help="more options for every run, e.g. '--hidden 32'")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--phases", default="tune,sweep,report")
    return p.parse_args()


SUMMARY = re.compile(r"^summary experiment=time_to_accuracy (.*)$")


def summaries(text):
    rows = []
    for line in text.splitlines():
        m = SUMMARY.match(line)
        if m:
            rows.append(dict(kv.split("=", 1) for kv in m.group(1).split()))
    return rows


def run(binary, args, log):
    """Runs one invocation (skipped when its log holds the summaries of the same command)."""
    cmd = [binary] + args
    if os.path.exists(log):
        with open(log) as f:
            text = f.read()
        if text.startswith("# " + " ".join(cmd) + "\n") and summaries(text):
            return text
    with open(log + ".tmp", "w") as f:
        f.write("# " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    os.replace(log + ".tmp", log)
    with open(log) as f:
        text = f.read()
    if r.returncode != 0:
        sys.exit(f"time_to_accuracy failed ({r.returncode}), see {log}")
    return text


def seconds(row):
    v = row["seconds_to_target"]
    return math.inf if v == "none" else float(v)


def main():
    a = parse_args()
    os.makedirs(a.out, exist_ok=True)
    nodes = [int(x) for x in a.nodes.split(",")]
    ratios = a.ratios.split(",")
    stragglers = a.stragglers.split(",")
    lrs = a.lrs.split(",")
    algorithms = a.algorithms.split(",")
    algorithms_at = {}
    for item in filter(None, a.algorithms_at.split(";")):
        n, names = item.split(":", 1)
        algorithms_at[int(n)] = names.split(",")
    epochs = dict(kv.split(":") for kv in a.epochs.split(","))
    targets = dict(kv.split(":") for kv in a.targets.split(","))
    phases = a.phases.split(",")
    extra = a.extra.split()

    def common(n):
        e = float(epochs[str(n)])
        return ["--nodes", str(n), "--epochs", f"{e:g}", "--target", targets[str(n)],
                "--warmup-epochs", f"{e / 10:g}", "--eval-every", f"{e / a.evaluations:.6g}",
                "--slowdown", a.slowdown] + extra

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs)

    # Phase 1: the same learning-rate budget for every algorithm (allreduce included).
    tuned = {}
    tune_jobs = {}
    for n, lr in itertools.product(nodes, lrs):
        log = os.path.join(a.out, f"tune_n{n}_lr{lr}.log")
        args = common(n) + ["--ratio", "1", "--stragglers", "0", "--lr", lr,
                            "--algorithms", ",".join(algorithms_at.get(n, algorithms))]
        if "tune" in phases or os.path.exists(log):
            tune_jobs[(n, lr)] = pool.submit(run, a.binary, args, log)
    tuning_rows = []
    for (n, lr), job in tune_jobs.items():
        for row in summaries(job.result()):
            row["lr"] = lr
            tuning_rows.append(row)
    best = {}
    for row in tuning_rows:
        key = (int(row["n"]), row["algorithm"])
        score = (seconds(row), -float(row["final_acc"]))
        if key not in best or score < best[key][0]:
            best[key] = (score, row["lr"])
    tuned = {k: v[1] for k, v in best.items()}
    with open(os.path.join(a.out, "tuned_rates.txt"), "w") as f:
        for (n, alg), lr in sorted(tuned.items()):
            f.write(f"n={n} algorithm={alg} lr={lr}\n")

    # Phase 2: the sweep with the tuned rates.
    sweep_jobs = {}
    if "sweep" in phases or "report" in phases:
        for n, r, s in itertools.product(nodes, ratios, stragglers):
            log = os.path.join(a.out, f"sweep_n{n}_r{r}_s{s}.log")
            csv = os.path.join(a.out, f"sweep_n{n}_r{r}_s{s}.csv")
            rates = ["--lr-allreduce", tuned.get((n, "allreduce"), lrs[0])]
            for alg in algorithms_at.get(n, algorithms):
                rates += [f"--lr-{alg}", tuned.get((n, alg), lrs[0])]
            args = common(n) + ["--ratio", r, "--stragglers", s, "--algorithms",
                                ",".join(algorithms_at.get(n, algorithms)), "--csv", csv] + rates
            if "sweep" in phases or os.path.exists(log):
                sweep_jobs[(n, r, s)] = pool.submit(run, a.binary, args, log)
    rows = []
    for key, job in sweep_jobs.items():
        rows += summaries(job.result())
    with open(os.path.join(a.out, "summary.txt"), "w") as f:
        for row in tuning_rows:
            f.write("tune lr=%s summary experiment=time_to_accuracy %s\n" % (
                row["lr"], " ".join(f"{k}={v}" for k, v in row.items() if k != "lr")))
        for row in rows:
            f.write("summary experiment=time_to_accuracy " +
                    " ".join(f"{k}={v}" for k, v in row.items()) + "\n")
    if "report" in phases:
        report(a, rows, tuned, nodes, ratios, stragglers, ["allreduce"] + algorithms)


def table(out, nodes, algorithms, cell, align="---|"):
    """A markdown table, one row per algorithm, one column per n: cell(alg, n) -> text."""
    out.append("| algorithm | " + " | ".join(f"n={n}" for n in nodes) + " |")
    out.append("|---|" + align * len(nodes))
    for alg in algorithms:
        out.append(f"| {alg} | " + " | ".join(cell(alg, n) for n in nodes) + " |")


def report(a, rows, tuned, nodes, ratios, stragglers, algorithms):
    by = {(int(r["n"]), r["ratio"], r["stragglers"], r["algorithm"]): r for r in rows}
    out = []
    out.append(f"Targets (test accuracy of the mean model) per n: {a.targets}; epochs per n: "
               f"{a.epochs}; tuning budget: learning rates {a.lrs} for every algorithm.\n")
    out.append("### Tuned learning rates\n")
    table(out, nodes, algorithms, lambda alg, n: tuned.get((n, alg), "-"), "---:|")

    def epochs_cell(alg, n):
        row = by.get((n, "1", "0", alg))
        if row is None:
            return ""
        acc = f"{float(row['final_acc']) * 100:.2f}%"
        if math.isinf(seconds(row)):
            return f"not reached; {acc}"
        return f"{float(row['epochs_to_target']):.2f}; {acc}"

    out.append("\n### Epochs to the target, ratio 1, no stragglers\n")
    out.append("Epochs (passes over the data by all nodes) until the mean model reached the "
               "target; final accuracy at the end of the budget.\n")
    table(out, nodes, algorithms, epochs_cell)

    def sweep_cell(r, s):
        def cell(alg, n):
            row = by.get((n, r, s, alg))
            if row is None:
                return ""
            t = seconds(row)
            sp = row["speedup_vs_allreduce"]
            text = "not reached" if math.isinf(t) else f"{t:.1f} s"
            if sp != "none" and alg != "allreduce":
                text += f" ({float(sp):.2f}x)"
            return (text + f"; {float(row['sync_share']) * 100:.1f}%; "
                    f"{float(row['final_acc']) * 100:.2f}%")
        return cell

    for r, s in itertools.product(ratios, stragglers):
        out.append(f"\n### ratio {r}, stragglers {float(s) * 100:.0f}%\n")
        out.append("Simulated seconds to the target (speedup over allreduce SGD); "
                   "sync share; final accuracy.\n")
        table(out, nodes, algorithms, sweep_cell(r, s))
    with open(os.path.join(a.out, "tables.md"), "w") as f:
        f.write("\n".join(out) + "\n")

    if shutil.which("gnuplot") is None:
        print("gnuplot not found: no plots (apt-get install gnuplot-nox)")
        return
    plots = []
    # Accuracy against simulated time, one line per algorithm, for each sweep point.
    for n, r, s in itertools.product(nodes, ratios, stragglers):
        csv = os.path.join(a.out, f"sweep_n{n}_r{r}_s{s}.csv")
        if not os.path.exists(csv):
            continue
        png = os.path.join(a.out, f"accuracy_n{n}_r{r}_s{s}.png")
        # Eight colours, then the same colours dashed: every algorithm its own line.
        lines = [f"'{csv}' using (strcol(1) eq '{alg}' ? $6 : 1/0):($7*100) with lines "
                 f"lw 2 lc {k % 8 + 1} dt {k // 8 + 1} title '{alg}'"
                 for k, alg in enumerate(algorithms)]
        plots.append(
            f"set output '{png}'\nset title 'n = {n}, ratio {r}, stragglers {s}'\n"
            f"set xlabel 'simulated seconds'\nset ylabel 'test accuracy of the mean model (%)'\n"
            f"set key bottom right\nset yrange [50:90]\nset logscale x\n"
            f"plot {', '.join(lines)}\nunset logscale x\nset yrange [*:*]\n")
    # Speedup over allreduce and sync share against n.
    for r, s in itertools.product(ratios, stragglers):
        data = os.path.join(a.out, f"vs_n_r{r}_s{s}.dat")
        with open(data, "w") as f:
            f.write("# n " + " ".join(f"{alg}_speedup {alg}_sync" for alg in algorithms) + "\n")
            for n in nodes:
                vals = []
                for alg in algorithms:
                    row = by.get((n, r, s, alg))
                    sp = row["speedup_vs_allreduce"] if row else "none"
                    vals.append("nan" if sp == "none" else sp)
                    vals.append(row["sync_share"] if row else "nan")
                f.write(f"{n} " + " ".join(vals) + "\n")
        for what, col, label in (("speedup", 0, "speedup over allreduce SGD (time to target)"),
                                 ("sync_share", 1, "share of time synchronizing")):
            png = os.path.join(a.out, f"{what}_vs_n_r{r}_s{s}.png")
            lines = [f"'{data}' using 1:{2 + 2 * k + col} with linespoints lw 2 lc {k % 8 + 1} "
                     f"dt {k // 8 + 1} title '{alg}'" for k, alg in enumerate(algorithms)]
            plots.append(
                f"set output '{png}'\nset title '{label}, ratio {r}, stragglers {s}'\n"
                f"set xlabel 'nodes'\nset ylabel '{label}'\nset logscale x 2\nset key outside\n"
                f"plot {', '.join(lines)}\nunset logscale x\nset key inside\n")
    script = os.path.join(a.out, "plots.gp")
    with open(script, "w") as f:
        f.write("set terminal pngcairo size 1000,600\nset datafile separator whitespace\n")
        for p in plots:
            # The CSVs are comma-separated, the .dat files whitespace-separated.
            sep = "','" if ".csv'" in p else "whitespace"
            f.write(f"set datafile separator {sep}\n{p}\n")
    subprocess.run(["gnuplot", script], check=True)
    print(f"tables: {os.path.join(a.out, 'tables.md')}; plots: {a.out}/*.png")


if __name__ == "__main__":
    main()
