#!/usr/bin/env python3
"""Time to accuracy over a real, rate-limited network (issue 12; docs/experiments.md).

Trains ResNet-20 on Fashion-MNIST with `ranks` MPI ranks (or PyTorch DDP processes) inside a
network namespace whose loopback is rate-limited (bench/emulated_network.sh), for every link
rate x algorithm, and reports wall-clock time to the target accuracies, final accuracy, bytes
per rank and the synchronization share. Every algorithm trains on the same shards, in the same
batch order, from the same initial model, with the same batch, schedule and epoch budget:

  swarm-lattice8, swarm-fp32   Swarm SGD, H = 2 (resnet_swarm_mpi), 8-bit lattice or fp32 wire
  allreduce                    allreduce SGD (the mean gradient every step, MPI_Iallreduce)
  local-h<H>                   local SGD (the mean model every H steps, MPI_Iallreduce)
  ddp                          PyTorch DistributedDataParallel, gloo (bench/ddp_resnet20.py, on
                               the plan resnet_swarm_mpi --export-plan writes)

Every rank runs one thread (OMP_NUM_THREADS=1, torch.set_num_threads(1)). The models of every
boundary (--eval-every) are evaluated after training (--deferred-evaluation; DDP keeps
snapshots), so measuring costs the runs neither traffic nor CPU. A boundary's time is when the
last rank reached it.

Synchronous algorithms (allreduce, local SGD, DDP) compute the same models whatever the link:
with --project-synchronous F (> 0) they train the full budget only at the first rate of
--rates, and at the others for F epochs, which measures their time per step there; their
accuracy curve is then the first rate's, at that rate's time per step ("projected" in the
tables). 0 trains every run fully. Swarm SGD's models depend on timing: it always runs fully.

Prints one line per run:
  summary experiment=emulated_network rate=<r> ranks=<n> algorithm=<a> seconds_to_90=<t>
          speedup_vs_allreduce=<x> speedup_vs_ddp=<y> final_acc=<a>
(the second target of --targets names the field), a `ratio` line per rate (allreduce SGD's
synchronization time per step over its computation per step), and writes results.json,
tables.md, summary.txt and accuracy_<rate>.png (gnuplot) to --out. Runs are cached in --out
by their command line, so an interrupted sweep resumes. Must run as root (network namespace);
otherwise it exits with 77.

  bench/emulated_network_runs.py --binary build-rel/examples/resnet/resnet_swarm_mpi \
      --out build-rel/emulated [--rates 10gbit,1gbit,100mbit,50mbit] [--mpi openmpi|mpich]
"""
import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = os.path.join(ROOT, "bench", "emulated_network.sh")
DDP = os.path.join(ROOT, "bench", "ddp_resnet20.py")
# What the namespace's loopback carried: every rank's traffic (rank 0 reads it when training
# starts and ends: the evaluation's reductions afterwards are not counted).
COUNTER = "/sys/class/net/lo/statistics/tx_bytes"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True, help="resnet_swarm_mpi, built for --mpi")
    p.add_argument("--out", required=True, help="directory for logs, CSVs, tables and plots")
    p.add_argument("--mpi", choices=["openmpi", "mpich"], default="openmpi")
    p.add_argument("--rates", default="10gbit,1gbit,100mbit,50mbit",
                   help="link rates in tc syntax, fastest first")
    p.add_argument("--algorithms", default="allreduce,ddp,swarm-lattice8,swarm-fp32,local-h8")
    p.add_argument("--ranks", type=int, default=4)
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--warmup-epochs", type=float, default=0.5)
    p.add_argument("--eval-every", type=float, default=0.25)
    p.add_argument("--lrs", default="0.1,0.2",
                   help="the tuning budget, the same for every algorithm: each trains the full "
                        "budget at the first rate with each of these learning rates and keeps "
                        "the one that reaches the last target in the fewest epochs, ties and "
                        "misses broken by the best final accuracy (epochs, not seconds: on a "
                        "shared machine a few percent of time is noise); the other rates use it")
    p.add_argument("--targets", default="0.88,0.90")
    p.add_argument("--project-synchronous", type=float, default=0.25, metavar="F")
    p.add_argument("--data", default="", help="the Fashion-MNIST directory (the driver's default)")
    p.add_argument("--train-limit", type=int, default=0)
    p.add_argument("--test-limit", type=int, default=0)
    p.add_argument("--python", default="/usr/bin/python3", help="a python with torch (DDP)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    p.add_argument("--finalize-grace", type=float, default=None, metavar="S",
                   help="once a run printed its results, terminate it if it has not exited S "
                        "seconds later and keep the results (default: 30 with --mpi mpich, whose "
                        "MPI_Finalize over UCX's TCP transport hangs now and then; 0, off, with "
                        "Open MPI)")
    p.add_argument("--no-cache", action="store_true",
                   help="run everything again, even runs whose log is in --out")
    a = p.parse_args()
    if a.finalize_grace is None:
        a.finalize_grace = 30.0 if a.mpi == "mpich" else 0.0
    a.rates = a.rates.split(",")
    a.algorithms = a.algorithms.split(",")
    a.targets = [float(t) for t in a.targets.split(",")]
    a.lrs = [float(x) for x in a.lrs.split(",")]
    for alg in a.algorithms:
        if not (alg in ("allreduce", "ddp", "swarm-lattice8", "swarm-fp32")
                or re.fullmatch(r"local-h[1-9][0-9]*", alg)):
            p.error(f"unknown algorithm {alg!r}")
    if not os.access(a.binary, os.X_OK):
        p.error(f"--binary {a.binary} is not an executable")
    return a


def synchronous(alg):
    return not alg.startswith("swarm-")


def mpiexec(a):
    """The launcher, bound to TCP over the namespace's loopback, one thread per rank."""
    if a.mpi == "openmpi":
        root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
        return ["mpiexec", *root, "--oversubscribe", "--bind-to", "none", "-n", str(a.ranks),
                "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo",
                "--mca", "oob_tcp_if_include", "lo", "-x", "OMP_NUM_THREADS=1"]
    # MPICH (Debian: ch4:ucx): UCX over TCP only, no shared memory between local ranks.
    return ["mpiexec.mpich", "-n", str(a.ranks), "-iface", "lo", "-genv", "UCX_TLS", "tcp,self",
            "-genv", "UCX_NET_DEVICES", "lo", "-genv", "MPIR_CVAR_NOLOCAL", "1",
            "-genv", "OMP_NUM_THREADS", "1"]


def data_args(a, epochs, warmup, eval_every):
    args = ["--dataset", "fashion-mnist", "--depth", "20", "--batch", str(a.batch),
            "--epochs", str(epochs), "--warmup-epochs", str(warmup),
            "--eval-every", str(eval_every), "--seed", "1"]
    if a.data:
        args += ["--data", a.data]
    if a.train_limit:
        args += ["--train-limit", str(a.train_limit)]
    if a.test_limit:
        args += ["--test-limit", str(a.test_limit)]
    return args


def command(a, alg, lr, epochs, warmup, eval_every, csv, plan):
    """The command of one run (inside the namespace)."""
    lr = str(lr)
    if alg == "ddp":
        return ["env", "GLOO_SOCKET_IFNAME=lo", "OMP_NUM_THREADS=1", a.python, DDP,
                "--plan", plan, "--lr", lr, "--warmup-epochs", str(warmup), "--csv", csv,
                "--traffic-counter", COUNTER]
    if alg.startswith("swarm-"):
        quantizer = "lattice8" if alg == "swarm-lattice8" else "identity"
        algo = ["--algorithm", "swarm", "--quantizer", quantizer, "--H", "2"]
    elif alg == "allreduce":
        algo = ["--algorithm", "allreduce", "--quantizer", "identity"]
    else:
        algo = ["--algorithm", "local", "--period", alg[len("local-h"):],
                "--quantizer", "identity"]
    return [*mpiexec(a), a.binary, *data_args(a, epochs, warmup, eval_every), "--lr", lr, *algo,
            "--deferred-evaluation", "--traffic-counter", COUNTER, "--csv", csv, "--no-plot"]


# The last lines resnet_swarm_mpi prints (rank 0), after every result (a run, a plan export):
# what --finalize-grace waits for.
DONE_MARKERS = ("Test accuracy: mean model", "Plan of ")


def results_printed(lines):
    return any(m in line for line in lines for m in DONE_MARKERS)


def run_logged(cmd, log, timeout, cache=True, finalize_grace=0.0):
    """Runs cmd unless log already holds its output (same command); returns the output.

    finalize_grace > 0: once the program printed its results (DONE_MARKERS), it gets that many
    seconds to exit; if it is still running then (Debian's MPICH 4.0.2 over UCX's TCP transport
    hangs now and then in MPI_Finalize, docs/experiments.md "MPICH"), the job is terminated
    and the run counts as complete, with a note in the log."""
    key = "# " + shlex.join(cmd) + "\n"
    if cache and os.path.exists(log):
        with open(log) as f:
            text = f.read()
        if text.startswith(key) and "\n# exit 0\n" in text:
            return text
    print("  $ " + shlex.join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines, note = [], ""
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    done_at = None
    while proc.poll() is None:
        now = time.monotonic()
        if done_at is None and finalize_grace > 0 and results_printed(lines):
            done_at = now
        if now >= deadline or (done_at is not None and now - done_at >= finalize_grace):
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            break
        time.sleep(0.2)
    reader.join(timeout=10)
    out, code = "".join(lines), proc.returncode
    if done_at is not None and code != 0:
        note = (f"# finalize hang: terminated {finalize_grace:g} s after the results "
                f"(exit {code})\n")
        code = 0
    elif code != 0 and time.monotonic() >= deadline:
        code = 124
    with open(log, "w") as f:
        f.write(key + out + note + f"\n# exit {code}\n")
    if code != 0:
        sys.exit(f"emulated_network_runs: run failed (exit {code}), see {log}:\n"
                 + "\n".join(out.splitlines()[-15:]))
    return key + out + note


def in_link(a, rate, cmd):
    # A fixed name: the command line is the cache key (a second sweep at the same time fails
    # to create the namespace, with ip's message).
    return ["bash", LINK, "--rate", rate, "--name", "swarmsgd-runs", "--", *cmd]


def read_csv(path):
    with open(path) as f:
        lines = f.read().split()
    head = lines[0].split(",")
    return [dict(zip(head, map(float, line.split(",")))) for line in lines[1:]]


def parse_run(text, csv, ranks):
    """Per-boundary rows, rank times and bytes of one run's log and CSV."""
    times = []
    for m in re.finditer(r"rank_times rank=(\d+) compute=([\d.]+) communicate=([\d.]+) "
                         r"wait=([\d.]+) wall=([\d.]+) steps=(\d+)", text):
        times.append({k: float(m.group(i + 2)) for i, k in
                      enumerate(["compute", "communicate", "wait", "wall", "steps"])})
    if len(times) != ranks:
        raise SystemExit(f"emulated_network_runs: {len(times)} rank_times lines, "
                         f"expected {ranks}")
    m = re.search(r"traffic bytes=(\d+)", text)
    rows = [{"epoch": r["epoch"], "seconds": r["seconds"], "acc": r["test_acc_mean"]}
            for r in read_csv(csv)]
    steps = times[0]["steps"]
    return {
        "rows": rows,
        "ranks": times,
        "bytes_per_rank": int(m.group(1)) / ranks if m else None,
        "seconds_per_step": max(t["wall"] for t in times) / steps,
        "compute_per_step": sum(t["compute"] for t in times) / ranks / steps,
        "sync_per_step": sum(t["communicate"] + t["wait"] for t in times) / ranks / steps,
        "sync_share": sum((t["communicate"] + t["wait"]) / t["wall"] for t in times) / ranks,
    }


def epochs_to(rows, target):
    return next((r["epoch"] for r in rows if r["acc"] >= target), math.inf)


def time_to(rows, target):
    for r in rows:
        if r["acc"] >= target:
            return r["seconds"]
    return None


def main():
    a = parse_args()
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        print("emulated_network_runs: SKIPPED: needs root with ip and tc (a network namespace "
              "with a rate-limited loopback)")
        return 77
    if "ddp" in a.algorithms and subprocess.run([a.python, "-c", "import torch"],
                                                 capture_output=True).returncode != 0:
        print(f"emulated_network_runs: SKIPPED: algorithm ddp needs PyTorch in {a.python} "
              "(Debian: scripts/install-deps.sh --bench installs python3-torch)")
        return 77
    os.makedirs(a.out, exist_ok=True)
    plan = os.path.join(a.out, "plan")
    if "ddp" in a.algorithms:  # the shards, order, initial model and test set DDP trains on
        run_logged([*mpiexec(a), a.binary,
                    *data_args(a, a.epochs, a.warmup_epochs, a.eval_every),
                    "--export-plan", plan], os.path.join(a.out, "plan.log"), a.timeout,
                   not a.no_cache, a.finalize_grace)
    results, tuning, tuned = {}, {}, {}
    base = a.rates[0]

    def one(rate, alg, lr, tag, project):
        csv = os.path.join(a.out, tag + ".csv")
        if project:  # time per step at this rate: no warm-up, one evaluation
            sub = plan
            if alg == "ddp":  # its plan fixes the run: a shorter one of its own
                sub = os.path.join(a.out, f"plan_{a.project_synchronous}")
                run_logged([*mpiexec(a), a.binary, *data_args(a, a.project_synchronous, 0, 1e6),
                            "--export-plan", sub], sub + ".log", a.timeout, not a.no_cache,
                           a.finalize_grace)
            cmd = command(a, alg, lr, a.project_synchronous, 0, 1e6, csv, sub)
        else:
            cmd = command(a, alg, lr, a.epochs, a.warmup_epochs, a.eval_every, csv, plan)
        print(f"{rate} {alg} lr {lr}{' (time per step only)' if project else ''}", flush=True)
        r = parse_run(run_logged(in_link(a, rate, cmd), os.path.join(a.out, tag + ".log"),
                                 a.timeout, not a.no_cache, a.finalize_grace), csv, a.ranks)
        r["projected"], r["lr"] = project, lr
        return r

    for alg in a.algorithms:  # tuning at the first rate, full budget
        for lr in a.lrs:
            tuning[(alg, lr)] = one(base, alg, lr, f"{base}_{alg}_lr{lr}", False)
        # Fewest epochs to the last target; ties and misses: the best final accuracy.
        tuned[alg] = min(a.lrs, key=lambda lr: (
            epochs_to(tuning[(alg, lr)]["rows"], a.targets[-1]),
            -tuning[(alg, lr)]["rows"][-1]["acc"]))
        results[(base, alg)] = tuning[(alg, tuned[alg])]
        print(f"tuned {alg}: lr {tuned[alg]}", flush=True)
    for rate in a.rates[1:]:
        for alg in a.algorithms:
            project = synchronous(alg) and a.project_synchronous > 0
            r = one(rate, alg, tuned[alg],
                    f"{rate}_{alg}_lr{tuned[alg]}" + ("_partial" if project else ""), project)
            if project:  # the first rate's curve at this rate's time per step
                full = results[(base, alg)]
                steps_per_epoch = full["ranks"][0]["steps"] / a.epochs
                r["rows"] = [{"epoch": x["epoch"], "acc": x["acc"],
                              "seconds": x["epoch"] * steps_per_epoch * r["seconds_per_step"]}
                             for x in full["rows"]]
                r["bytes_per_rank"] = full["bytes_per_rank"]
            results[(rate, alg)] = r
    with open(os.path.join(a.out, "tuning.md"), "w") as f:
        f.write(f"| algorithm | " + " | ".join(f"lr {lr}: epochs to {100 * a.targets[-1]:g}%, "
                                              "final" for lr in a.lrs) + " | kept |\n")
        f.write("|---|" + "---:|" * (len(a.lrs) + 1) + "\n")
        for alg in a.algorithms:
            cells = [f"{fmt(epochs_to(tuning[(alg, lr)]['rows'], a.targets[-1]), 'g')}, "
                     f"{100 * tuning[(alg, lr)]['rows'][-1]['acc']:.2f}%" for lr in a.lrs]
            f.write(f"| {alg} | " + " | ".join(cells) + f" | {tuned[alg]} |\n")
    report(a, results)
    return 0


def fmt(x, spec=".0f", none="not reached"):
    return none if x is None or x == math.inf else format(x, spec)


def seconds_cell(t):
    return "not reached" if t is None else f"{t:.0f} s"


def report(a, results):
    key = f"{round(a.targets[-1] * 100):d}"
    lines, summary = [], []
    for rate in a.rates:
        ar = results.get((rate, "allreduce"))
        if ar:
            lines.append(f"ratio rate={rate} allreduce_sync_per_step_ms="
                         f"{1e3 * ar['sync_per_step']:.1f} compute_per_step_ms="
                         f"{1e3 * ar['compute_per_step']:.1f} ratio="
                         f"{ar['sync_per_step'] / ar['compute_per_step']:.2f}")
        for alg in a.algorithms:
            r = results[(rate, alg)]
            t = time_to(r["rows"], a.targets[-1])

            def speedup(other):
                o = results.get((rate, other))
                ot = time_to(o["rows"], a.targets[-1]) if o else None
                return "none" if t is None or ot is None else f"{ot / t:.2f}"
            summary.append(
                f"summary experiment=emulated_network rate={rate} ranks={a.ranks} "
                f"algorithm={alg} seconds_to_{key}={fmt(t, '.1f', 'none')} "
                f"speedup_vs_allreduce={speedup('allreduce')} speedup_vs_ddp={speedup('ddp')} "
                f"final_acc={r['rows'][-1]['acc']:.4f}")
    for line in lines + summary:
        print(line)
    with open(os.path.join(a.out, "summary.txt"), "w") as f:
        f.write("\n".join(lines + summary) + "\n")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({f"{k[0]} {k[1]}": v for k, v in results.items()}, f, indent=1)

    heads = [f"to {t * 100:g}%" for t in a.targets]
    md = ["| rate | algorithm | " + " | ".join(heads) + " | final acc | MB sent per rank | "
          "sync share | s per step |", "|---|---|" + "---:|" * (len(heads) + 4)]
    for rate in a.rates:
        for alg in a.algorithms:
            r = results[(rate, alg)]
            mark = " (projected)" if r["projected"] else ""
            cells = [seconds_cell(time_to(r["rows"], t)) for t in a.targets]
            mb = fmt(r["bytes_per_rank"] / 1e6 if r["bytes_per_rank"] else None, ".0f", "?")
            md.append(f"| {rate} | {alg}{mark} | " + " | ".join(cells)
                      + f" | {100 * r['rows'][-1]['acc']:.2f}% | {mb} | "
                      f"{100 * r['sync_share']:.1f}% | {r['seconds_per_step']:.3f} |")
    with open(os.path.join(a.out, "tables.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    plot(a, results)


def plot(a, results):
    if shutil.which("gnuplot") is None:
        print("gnuplot not found: no plots (apt-get install gnuplot-nox)")
        return
    finals = [100 * r["rows"][-1]["acc"] for r in results.values()]
    low = max(0, 10 * math.floor((min(finals) - 15) / 10))
    for rate in a.rates:
        script = [f"set terminal pngcairo size 900,560 noenhanced",
                  f"set output '{os.path.join(a.out, f'accuracy_{rate}.png')}'",
                  f"set title 'ResNet-20 on Fashion-MNIST, {a.ranks} ranks, link {rate} "
                  "(shared)'", "set xlabel 'wall-clock seconds'",
                  "set ylabel 'test accuracy of the mean model (%)'", "set key bottom right",
                  "set grid", f"set yrange [{low}:*]"]
        plots = []
        for alg in a.algorithms:
            r = results[(rate, alg)]
            data = os.path.join(a.out, f"plot_{rate}_{alg}.dat")
            with open(data, "w") as f:
                for x in r["rows"]:
                    f.write(f"{x['seconds']} {100 * x['acc']}\n")
            label = alg + (" (projected)" if r["projected"] else "")
            plots.append(f"'{data}' using 1:2 with linespoints title '{label}'")
        for t in a.targets:
            plots.append(f"{100 * t} with lines dashtype 2 lc 'gray' notitle")
        script.append("plot " + ", ".join(plots))
        path = os.path.join(a.out, f"accuracy_{rate}.gp")
        with open(path, "w") as f:
            f.write("\n".join(script) + "\n")
        subprocess.run(["gnuplot", path], check=True)


if __name__ == "__main__":
    sys.exit(main())
