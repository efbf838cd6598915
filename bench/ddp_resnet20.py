#!/usr/bin/python3
"""PyTorch DistributedDataParallel (gloo) baseline for the ResNet MPI driver's time to accuracy.

Trains the ResNet of examples/resnet/tools/make_torch_fixtures.py (the network of resnet.hpp)
on a plan directory exported by the C++ driver (examples/resnet/train/plan_export.hpp: meta.txt,
init.f32, shard/order files per rank, the test set), so that both train on exactly the same
data and order per rank, initial model, batch, learning-rate schedule and number of local
steps; only the averaging differs: DDP allreduces every step's gradients (default settings).
Each rank: one thread, SGD (momentum, coupled weight decay), the driver's schedule (linear
warm-up of round(W * steps / epochs) steps, then cosine, or x0.1 at 50% and x0.01 at 75%),
mean cross-entropy, pixels normalized as (p / 255 - mean[c]) / std[c] before the clock starts.
At every epoch boundary rank 0 snapshots its model; the snapshots are evaluated on the test
set after training, so evaluation never stalls the ranks. The script spawns the ranks itself:

    /usr/bin/python3 bench/ddp_resnet20.py --plan DIR --lr 0.1 [--warmup-epochs 1]
        [--momentum 0.9] [--weight-decay 5e-4] [--schedule cosine|step] --csv OUT.csv
        [--port 29517] [--summary-json OUT.json]

OUT.csv has the driver's format (examples/resnet/train/epoch_record.hpp), a row per epoch:

    epoch,train_loss,test_acc_mean,test_acc_node0,gamma,bytes_sent,averaging_share,seconds

train_loss is rank 0's own mean over the epoch's steps; both accuracies are rank 0's model's
(all ranks hold the same one); gamma is 0; bytes_sent is an ESTIMATE per rank, what a ring
allreduce of the gradients sends (2 (ranks-1)/ranks x 4 bytes x trainable floats per step;
measure real traffic on the interface); averaging_share is rank 0's wait share so far;
seconds is wall time since the clock started. Then a line per rank and a total:

    rank_times rank=<r> compute=<s> communicate=0 wait=<s> wall=<s> steps=<n>
    ddp_done wall=<s> final_acc=<fraction>

DDP overlaps the allreduce with the backward pass, so communication is not timed apart:
compute = steps x the time of a step of a plain copy of the model, calibrated before the
clock (all ranks at once, so the contention for the cores is included), and wait = wall -
compute (>= 0) is the rest. ddp_done's wall is the slowest rank's. --summary-json writes the
same figures as JSON. Bad options or plan files exit with code 2 and a message.
"""
import argparse
import copy
import datetime
import json
import math
import os
import sys
import time
import traceback

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from torch.multiprocessing.spawn import ProcessException
from torch.nn.parallel import DistributedDataParallel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples", "resnet", "tools"))
from make_torch_fixtures import ResNet  # noqa: E402  the same architecture as resnet.hpp

INT_KEYS = ["ranks", "batch", "steps_per_node", "channels", "height", "width", "classes",
            "depth", "base_width", "params", "train_count", "test_count", "seed"]
CALIBRATION_WARMUP, CALIBRATION_STEPS = 3, 10
EVAL_BATCH = 500
CSV_HEADER = ("epoch,train_loss,test_acc_mean,test_acc_node0,gamma,bytes_sent,averaging_share,"
              "seconds")  # examples/resnet/train/epoch_record.hpp


class PlanError(Exception):
    """A missing, truncated or inconsistent plan file, or a bad option value."""


def read_meta(plan):
    path = os.path.join(plan, "meta.txt")
    try:
        with open(path) as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    except OSError as e:
        raise PlanError(f"cannot read {path}: {e.strerror}")
    raw = dict(ln.split("=", 1) for ln in lines if "=" in ln)
    try:
        meta = {key: int(raw[key]) for key in INT_KEYS}
        meta.update({key: int(raw[key]) for key in ["trainable"] if key in raw})  # optional
        meta["epochs"] = float(raw["epochs"])
        if "steps_per_epoch" in raw:  # optional
            meta["steps_per_epoch"] = float(raw["steps_per_epoch"])
        meta["boundaries"] = [int(v) for v in raw["boundaries"].split(",")]
        for key in ["boundary_epochs", "mean", "std"]:
            meta[key] = [float(v) for v in raw[key].split(",")]
    except KeyError as e:
        raise PlanError(f"{path}: missing key {e.args[0]}")
    except ValueError as e:
        raise PlanError(f"{path}: bad value ({e})")
    b, c = meta["boundaries"], meta["channels"]
    checks = [
        (all(meta[k] > 0 for k in INT_KEYS if k not in ("seed", "train_count")), "counts > 0"),
        (meta["epochs"] > 0, "epochs > 0"),
        (meta["depth"] >= 8 and (meta["depth"] - 2) % 6 == 0, "depth = 6k+2 >= 8"),
        (len(b) == len(meta["boundary_epochs"]), "as many boundaries as boundary_epochs"),
        (all(x < y for x, y in zip([0] + b, b)), "boundaries increasing and > 0"),
        (b[-1] == meta["steps_per_node"], "last boundary = steps_per_node"),
        (len(meta["mean"]) == c and len(meta["std"]) == c, "one mean and std per channel"),
        (all(s > 0 for s in meta["std"]), "std > 0"),
    ]
    for ok, what in checks:
        if not ok:
            raise PlanError(f"{path}: expected {what}")
    return meta


def read_array(path, dtype, count=None):
    """The array in `path`; `count` elements exactly if given, else a whole number of them."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise PlanError(f"cannot read {path}: {e.strerror}")
    item = np.dtype(dtype).itemsize
    if (count is not None and size != count * item) or size % item:
        expected = f"{count * item} bytes" if count is not None else f"a multiple of {item}"
        raise PlanError(f"{path}: {size} bytes, expected {expected}")
    return np.fromfile(path, dtype=dtype)


def read_images(plan, stem, meta, count=None):
    """Normalized float images [n, C, H, W] and int64 labels of `stem` (.u8, .labels.i32)."""
    labels = read_array(os.path.join(plan, stem + ".labels.i32"), "<i4", count)
    if labels.size and (labels.min() < 0 or labels.max() >= meta["classes"]):
        raise PlanError(f"{os.path.join(plan, stem)}.labels.i32: labels outside "
                        f"[0, {meta['classes']})")
    shape = (labels.size, meta["channels"], meta["height"], meta["width"])
    pixels = read_array(os.path.join(plan, stem + ".u8"), np.uint8, int(np.prod(shape)))
    images = torch.from_numpy(pixels.reshape(shape).astype(np.float32) / 255)
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    return (images - mean) / std, torch.from_numpy(labels.astype(np.int64))


def read_shard(plan, meta, rank):
    """Rank `rank`'s images, labels and sample order (int64 [steps, batch])."""
    images, labels = read_images(plan, f"shard.rank{rank}", meta)
    steps, batch = meta["steps_per_node"], meta["batch"]
    path = os.path.join(plan, f"order.rank{rank}.u32")
    order = read_array(path, "<u4", steps * batch)
    if order.size and order.max() >= labels.numel():
        raise PlanError(f"{path}: index {order.max()} >= shard size {labels.numel()}")
    return images, labels, torch.from_numpy(order.astype(np.int64)).view(steps, batch)


def load_model(plan, meta):
    """The ResNet of the plan with init.f32's parameters and BatchNorm running statistics."""
    model = ResNet(meta["depth"], in_channels=meta["channels"], classes=meta["classes"],
                   base_width=meta["base_width"])
    targets = list(model.parameters())
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        targets += [bn.running_mean, bn.running_var]
    total, trainable = sum(t.numel() for t in targets), sum(p.numel() for p in model.parameters())
    if meta.get("trainable", trainable) != trainable:
        raise PlanError(f"{os.path.join(plan, 'meta.txt')}: trainable={meta['trainable']}, "
                        f"but the model has {trainable} trainable parameters")
    if total != meta["params"]:
        raise PlanError(f"{os.path.join(plan, 'meta.txt')}: params={meta['params']}, but "
                        f"ResNet-{meta['depth']} (width {meta['base_width']}) has {total} "
                        "parameters and running statistics")
    flat = torch.from_numpy(read_array(os.path.join(plan, "init.f32"), "<f4", total))
    with torch.no_grad():
        for t, chunk in zip(targets, flat.split([t.numel() for t in targets])):
            t.copy_(chunk.view_as(t))
    return model


def learning_rate(t, base, total, warmup, schedule):
    """The C++ driver's schedule (examples/resnet/train/schedule.hpp) at local step t."""
    if t < warmup:
        return base * (t + 1) / warmup
    p = min((t - warmup) / max(total - warmup, 1), 1.0)
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * p))
    return base if p < 0.5 else base * 0.1 if p < 0.75 else base * 0.01


def make_optimizer(model, args):
    return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                           weight_decay=args.weight_decay)


def train_step(model, opt, images, labels):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    opt.step()
    return loss.item()


def calibrate(model, args, images, labels, order):
    """Seconds per step of a plain (non-DDP) copy of the model, without communication."""
    model, steps = copy.deepcopy(model), order.shape[0]
    opt = make_optimizer(model, args)
    start = 0.0
    for i in range(CALIBRATION_WARMUP + CALIBRATION_STEPS):
        if i == CALIBRATION_WARMUP:
            start = time.perf_counter()
        idx = order[i % steps]
        train_step(model, opt, images[idx], labels[idx])
    return (time.perf_counter() - start) / CALIBRATION_STEPS


def evaluate(model, images, labels):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, labels.numel(), EVAL_BATCH):
            logits = model(images[i:i + EVAL_BATCH])
            correct += (logits.argmax(1) == labels[i:i + EVAL_BATCH]).sum().item()
    return correct / labels.numel()


def worker(rank, args, meta, warmup):
    """One rank. It leaves with os._exit: in torch 1.13, destroying DDP's gloo process group
    at exit can deadlock (the group's thread waits for the GIL that the destructor holds)."""
    try:
        train_rank(rank, args, meta, warmup)
        code = 0
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def read_counter(path):
    """The integer in `path` (--traffic-counter), or None without one."""
    if not path:
        return None
    with open(path) as f:
        return int(f.read().strip())


def train_rank(rank, args, meta, warmup):
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    ranks, steps = meta["ranks"], meta["steps_per_node"]
    dist.init_process_group("gloo", rank=rank, world_size=ranks,
                            timeout=datetime.timedelta(seconds=120))
    images, labels, order = read_shard(args.plan, meta, rank)
    model = load_model(args.plan, meta)
    dist.barrier()  # all ranks calibrate at once: the figure includes the core contention
    step_seconds = calibrate(model, args, images, labels, order)
    ddp = DistributedDataParallel(model)
    opt = make_optimizer(ddp, args)
    ddp.train()
    boundaries = set(meta["boundaries"])
    snapshots, losses = [], []  # losses: since the last boundary
    dist.barrier()
    counter = read_counter(args.traffic_counter) if rank == 0 else None
    t0 = time.perf_counter()
    for t in range(steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(t, args.lr, steps, warmup, args.schedule)
        idx = order[t]
        losses.append(train_step(ddp, opt, images[idx], labels[idx]))
        if t + 1 in boundaries:
            if rank == 0:
                elapsed, loss = time.perf_counter() - t0, sum(losses) / len(losses)
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                snapshots.append((t + 1, elapsed, loss, state))
                print(f"trained to epoch {meta['boundary_epochs'][len(snapshots) - 1]:.2f}  "
                      f"loss {loss:.4f}  {elapsed:.1f} s", flush=True)
            losses = []
    wall = time.perf_counter() - t0
    if counter is not None:
        print(f"traffic bytes={read_counter(args.traffic_counter) - counter}", flush=True)
    times = [None] * ranks
    dist.all_gather_object(times, (step_seconds, wall))
    if rank == 0:
        report(args, meta, snapshots, times, model)


def report(args, meta, snapshots, times, model):
    """Evaluates rank 0's snapshots and writes the CSV, the final lines and the JSON."""
    torch.set_num_threads(os.cpu_count() or 1)  # training is over: evaluate with every core
    test_images, test_labels = read_images(args.plan, "test", meta, meta["test_count"])
    ranks, steps = meta["ranks"], meta["steps_per_node"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    step_bytes = 8 * (ranks - 1) * trainable  # / ranks: a ring allreduce's bytes per step
    epochs = []
    with open(args.csv, "a") as csv:
        for k, (done, elapsed, loss, state) in enumerate(snapshots):
            model.load_state_dict(state)
            acc = evaluate(model, test_images, test_labels)
            sync = max(elapsed - times[0][0] * done, 0.0)
            row = {"epoch": meta["boundary_epochs"][k], "train_loss": loss,
                   "test_acc_mean": acc, "test_acc_node0": acc, "gamma": 0,
                   "bytes_sent": done * step_bytes // ranks,
                   "averaging_share": sync / elapsed if elapsed > 0 else 0.0,
                   "seconds": elapsed}
            epochs.append(row)
            csv.write("{epoch:.4f},{train_loss:.6f},{test_acc_mean:.6f},{test_acc_node0:.6f},"
                      "{gamma},{bytes_sent},{averaging_share:.6f},{seconds:.3f}\n".format(**row))
            csv.flush()
            print(f"epoch {row['epoch']:.2f}  loss {loss:.4f}  test accuracy {100 * acc:.2f}%  "
                  f"sync {100 * row['averaging_share']:.1f}%  sent (estimate) "
                  f"{row['bytes_sent'] / 2**20:.1f} MiB  {elapsed:.0f} s", flush=True)
    per_rank = []
    for r, (step_seconds, wall) in enumerate(times):
        compute = step_seconds * steps
        per_rank.append({"rank": r, "compute": compute, "communicate": 0,
                         "wait": max(wall - compute, 0.0), "wall": wall, "steps": steps,
                         "step_seconds_calibrated": step_seconds,
                         "allreduce_bytes_estimate": steps * step_bytes // ranks})
        print("rank_times rank={rank} compute={compute:.3f} communicate=0 wait={wait:.3f} "
              "wall={wall:.3f} steps={steps}".format(**per_rank[-1]))
    wall, final_acc = max(w for _, w in times), epochs[-1]["test_acc_node0"]
    print(f"ddp_done wall={wall:.3f} final_acc={final_acc:.6f}", flush=True)
    if args.summary_json:
        summary = {"options": vars(args), "ranks": ranks, "batch": meta["batch"],
                   "steps_per_node": steps, "trainable_floats": trainable, "wall": wall,
                   "final_acc": final_acc, "per_rank": per_rank, "epochs": epochs}
        with open(args.summary_json, "w") as f:
            json.dump(summary, f, indent=1)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--plan", required=True, help="plan directory exported by the C++ driver")
    p.add_argument("--lr", type=float, required=True, help="base learning rate")
    p.add_argument("--warmup-epochs", type=float, default=0.0)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", choices=["cosine", "step"], default="cosine")
    p.add_argument("--csv", required=True, help="per-epoch results (the driver's CSV format)")
    p.add_argument("--port", type=int, default=29517, help="MASTER_PORT on 127.0.0.1")
    p.add_argument("--summary-json", help="also write the figures as JSON here")
    p.add_argument("--traffic-counter", metavar="FILE",
                   help="a file holding a byte counter (e.g. /sys/class/net/lo/statistics/"
                        "tx_bytes): rank 0 prints how much it grew during training")
    args = p.parse_args()
    for ok, what in [(args.lr > 0, "--lr must be > 0"),
                     (args.warmup_epochs >= 0, "--warmup-epochs must be >= 0"),
                     (0 <= args.momentum < 1, "--momentum must be in [0, 1)"),
                     (args.weight_decay >= 0, "--weight-decay must be >= 0"),
                     (0 < args.port < 65536, "--port must be in 1..65535")]:
        if not ok:
            p.error(what)  # exits with code 2
    return args


def main():
    args = parse_args()
    try:
        meta = read_meta(args.plan)
        steps = meta["steps_per_node"]
        # As the driver: round(W x steps per epoch), with the plan's exact steps per epoch.
        per_epoch = meta.get("steps_per_epoch", steps / meta["epochs"])
        warmup = int(math.floor(args.warmup_epochs * per_epoch + 0.5))
        if warmup >= steps:
            raise PlanError(f"--warmup-epochs {args.warmup_epochs}: {warmup} warm-up steps, "
                            f"not fewer than the {steps} steps of the run")
        load_model(args.plan, meta)  # check everything before spawning the ranks
        for r in range(meta["ranks"]):
            read_shard(args.plan, meta, r)
        read_images(args.plan, "test", meta, meta["test_count"])
        if args.traffic_counter:
            try:
                read_counter(args.traffic_counter)
            except (OSError, ValueError) as e:
                raise PlanError(f"--traffic-counter {args.traffic_counter}: not a readable "
                                f"counter ({e})")
        try:  # like the driver, the CSV is created with its header before training
            with open(args.csv, "w") as csv:
                csv.write(CSV_HEADER + "\n")
        except OSError as e:
            raise PlanError(f"cannot write {args.csv}: {e.strerror}")
        json_dir = os.path.dirname(os.path.abspath(args.summary_json or "."))
        if args.summary_json and not os.access(json_dir, os.W_OK):
            raise PlanError(f"cannot write {args.summary_json}: {json_dir} is not writable")
    except PlanError as e:
        print(f"ddp_resnet20.py: {e}", file=sys.stderr)
        sys.exit(2)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(args.port))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    print(f"# torch {torch.__version__}: DDP gloo, {meta['ranks']} ranks x {steps} steps of "
          f"batch {meta['batch']}, ResNet-{meta['depth']}, lr {args.lr} {args.schedule}, "
          f"{warmup} warm-up steps", flush=True)
    try:
        # On a failure the others are terminated and the exception names the rank.
        mp.spawn(worker, args=(args, meta, warmup), nprocs=meta["ranks"], join=True)
    except ProcessException as e:
        sys.exit(f"ddp_resnet20.py: a rank failed, the others were stopped: {e}")


if __name__ == "__main__":
    main()
