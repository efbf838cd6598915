#!/usr/bin/python3
"""ResNet-20 training throughput: our train_step (bench_resnet_throughput) against PyTorch on
the same architecture, same machine, same run. Run with Debian's /usr/bin/python3 (torch 1.13):

    /usr/bin/python3 bench/bench_resnet_throughput.py --binary build/bench/bench_resnet_throughput

Both sides: batch 128 of random 3x32x32 images, 10 classes, training mode, SGD with momentum
0.9 and weight decay 5e-4, `--warmup` untimed steps then `--steps` timed ones. For each thread
count the two are run alternately `--repeats` times and the best of each is kept (the machines
are shared; the best is the least disturbed). Prints per thread count:

    summary threads=<t> ours_img_s=<x> torch_img_s=<y> ratio=<x/y>
"""
import argparse
import os
import re
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples", "resnet", "tools"))
from make_torch_fixtures import ResNet  # noqa: E402  the same architecture as resnet.hpp


def torch_img_s(threads, batch, depth, steps, warmup):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = ResNet(depth=depth)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(batch, 3, 32, 32)
    labels = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def ours_img_s(binary, threads, batch, depth, steps, warmup):
    out = subprocess.run([binary, "--threads", str(threads), "--batch", str(batch), "--depth",
                          str(depth), "--steps", str(steps), "--warmup", str(warmup)],
                         check=True, capture_output=True, text=True).stdout
    match = re.search(r"img_s=([0-9.]+)", out)
    if not match:
        sys.exit(f"bench_resnet_throughput.py: no img_s in the output of {binary}:\n{out}")
    return float(match.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.path.join(HERE, "..", "build", "bench",
                                                         "bench_resnet_throughput"))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"bench_resnet_throughput.py: {args.binary} not found; build it with "
                 "-DSWARMSGD_BUILD_BENCH=ON -DCMAKE_BUILD_TYPE=Release "
                 "(target bench_resnet_throughput) or pass --binary")
    print(f"# torch {torch.__version__}, nproc {os.cpu_count()}, batch {args.batch}, "
          f"ResNet-{args.depth}, {args.steps} timed steps after {args.warmup}, "
          f"best of {args.repeats}", flush=True)
    for t in [int(x) for x in args.threads.split(",")]:
        ours, theirs = [], []
        for _ in range(args.repeats):
            theirs.append(torch_img_s(t, args.batch, args.depth, args.steps, args.warmup))
            ours.append(ours_img_s(args.binary, t, args.batch, args.depth, args.steps,
                                   args.warmup))
            print(f"# threads={t} ours_img_s={ours[-1]:.1f} torch_img_s={theirs[-1]:.1f}",
                  flush=True)
        x, y = max(ours), max(theirs)
        print(f"summary threads={t} ours_img_s={x:.1f} torch_img_s={y:.1f} ratio={x / y:.3f}",
              flush=True)


if __name__ == "__main__":
    main()
