#!/usr/bin/python3
"""LibTorch example throughput: the averaging share of a LibTorch ResNet-20 step on n in-process
nodes, and the example's images/s against the Eigen example and against Python PyTorch, on the
same machine in the same run. Run with Debian's /usr/bin/python3 (torch 1.13):

    /usr/bin/python3 bench/torch_resnet_throughput.py --build build-test

Three programs train ResNet-20 on Fashion-MNIST (1x28x28, 10 classes) at the same batch per
step, with SGD (momentum 0.9, weight decay 5e-4):
  - examples/torch/resnet_torch_swarm: n nodes on threads, each a torch::nn module with its own
    torch::optim::SGD; the node averages (8-bit lattice) every H = 2 steps;
  - examples/resnet/resnet_swarm: the same swarm on the Eigen network (its own SGD);
  - Python PyTorch: ONE model of the same architecture trained on the whole machine
    (torch.set_num_threads(nproc)), on random images of the same shape: the framework's own
    speed with nothing distributed, what a user would otherwise run.
Each C++ program runs `--epochs` of training (no evaluation but the last, on --test-limit
images) and prints its images/s over all nodes and its averaging share (time inside the
node's averaging calls over the nodes' wall time). The three are run alternately `--repeats`
times and the best of each is kept (the machine is shared; the best is the least disturbed).
Prints:

    summary program=<torch_swarm|eigen_swarm|pytorch> img_s=<x> averaging_share=<p>
    summary ratio torch_swarm/eigen_swarm=<r> torch_swarm/pytorch=<r>
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
from make_torch_fixtures import ResNet  # noqa: E402  the same architecture as the examples


def run_example(binary, args):
    cmd = [binary, "--nodes", str(args.nodes), "--depth", str(args.depth), "--batch",
           str(args.batch), "--epochs", str(args.epochs), "--eval-every", str(args.epochs),
           "--test-limit", str(args.test_limit), "--quantizer", args.quantizer,
           "--csv", os.devnull, "--no-plot"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    img = re.search(r"Finished in [0-9.]+ s \(([0-9.]+) images/s", out)
    share = re.search(r"averaging share of time ([0-9.]+)%", out)
    if not img or not share:
        sys.exit(f"torch_resnet_throughput.py: unexpected output of {' '.join(cmd)}:\n{out}")
    return float(img.group(1)), float(share.group(1))


def pytorch_img_s(args):
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(1)
    model = ResNet(depth=args.depth, in_channels=1, classes=10)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(args.batch, 1, 28, 28)
    labels = torch.randint(0, 10, (args.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(args.pytorch_steps):
        step()
    return args.pytorch_steps * args.batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(HERE, "..", "build"),
                        help="build directory holding examples/torch and examples/resnet")
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=0.1)
    parser.add_argument("--test-limit", type=int, default=500)
    parser.add_argument("--quantizer", default="lattice8")
    parser.add_argument("--pytorch-steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    programs = {
        "torch_swarm": os.path.join(args.build, "examples", "torch", "resnet_torch_swarm"),
        "eigen_swarm": os.path.join(args.build, "examples", "resnet", "resnet_swarm"),
    }
    for name, path in programs.items():
        if not os.access(path, os.X_OK):
            sys.exit(f"torch_resnet_throughput.py: {path} not found; build the examples "
                     "(-DSWARMSGD_BUILD_EXAMPLES=ON, LibTorch installed) or pass --build")
    print(f"# torch {torch.__version__}, nproc {os.cpu_count()}, {args.nodes} nodes, batch "
          f"{args.batch} per node, ResNet-{args.depth}, {args.epochs} epochs of Fashion-MNIST "
          f"per C++ run, {args.quantizer}; PyTorch: one model, {args.pytorch_steps} timed steps; "
          f"best of {args.repeats}", flush=True)
    best = {"torch_swarm": (0.0, 0.0), "eigen_swarm": (0.0, 0.0), "pytorch": (0.0, 0.0)}
    for r in range(args.repeats):
        for name, path in programs.items():
            img, share = run_example(path, args)
            print(f"run {r + 1} {name}: {img:.0f} img/s, averaging {share:.2f}%", flush=True)
            if img > best[name][0]:
                best[name] = (img, share)
        img = pytorch_img_s(args)
        print(f"run {r + 1} pytorch: {img:.0f} img/s", flush=True)
        best["pytorch"] = max(best["pytorch"], (img, 0.0))
    for name, (img, share) in best.items():
        print(f"summary program={name} img_s={img:.0f} averaging_share={share / 100:.4f}")
    t = best["torch_swarm"][0]
    print(f"summary ratio torch_swarm/eigen_swarm={t / best['eigen_swarm'][0]:.2f} "
          f"torch_swarm/pytorch={t / best['pytorch'][0]:.2f}")


if __name__ == "__main__":
    main()
