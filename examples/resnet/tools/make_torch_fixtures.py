#!/usr/bin/python3
"""PyTorch reference for the ResNet example (run with Debian's /usr/bin/python3, torch 1.13).

Builds the SAME network as examples/resnet/resnet.hpp in torch (CIFAR ResNet of He et al. 2016,
projection shortcuts, no conv bias), gives it deterministic parameters and BN running
statistics, runs one training-mode forward/backward in float64 on a tiny batch, and writes a
text fixture with, in OUR buffer order (torch's named_parameters() then, per BatchNorm,
running_mean and running_var):

    config <depth> <in_channels> <image_size> <classes> <base_width> <batch>
    images <n>        ...   NCHW
    labels <n>        ...
    params <n>        ...   whole buffer before the step (trainable + running statistics)
    loss 1            ...   mean cross-entropy of the step
    grad <n>          ...   d(loss)/d(trainable parameters)
    running <n>       ...   running statistics after the step
    eval_logits <n>   ...   [batch][classes] in eval mode, after the step
    resnet20_trainable 1 ...  trainable parameters of the default ResNet-20 (3x32x32, 10 classes)

Usage: /usr/bin/python3 examples/resnet/tools/make_torch_fixtures.py [output directory]
(default: examples/resnet/tests/fixtures next to this script). bench/bench_resnet_throughput.py
imports ResNet from here.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); shortcut = conv1x1-BN on a shape change."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet, depth 6k+2: conv3x3-BN-ReLU, 3 stages of k blocks (w, 2w, 4w), avg pool, fc."""

    def __init__(self, depth=20, in_channels=3, classes=10, base_width=16):
        super().__init__()
        assert depth >= 8 and (depth - 2) % 6 == 0
        k = (depth - 2) // 6
        w = base_width
        self.conv1 = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        stages, cin = [], w
        for stage in range(3):
            cout = w << stage
            blocks = []
            for i in range(k):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def batch_norms(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def our_buffer(model):
    """The whole buffer in our order: trainable parameters, then running mean/var per BN."""
    parts = [p.detach().reshape(-1) for p in model.parameters()]
    for bn in batch_norms(model):
        parts += [bn.running_mean.reshape(-1), bn.running_var.reshape(-1)]
    return torch.cat(parts)


def set_deterministic_parameters(model):
    """Parameters and running statistics from a formula (any values would do; these are
    well scaled so that the ReLUs are neither all on nor all off)."""
    with torch.no_grad():
        for t, (name, p) in enumerate(model.named_parameters()):
            i = torch.arange(p.numel(), dtype=torch.float64)
            if p.dim() == 4:  # conv: He-like scale
                fan_in = p[0].numel()
                v = math.sqrt(2.0 / fan_in) * 1.4 * torch.sin(0.37 * i + t)
            elif name.startswith("fc.") and p.dim() == 2:
                v = 0.3 * torch.sin(0.53 * i + t)
            elif name.endswith("bias"):
                v = 0.1 * torch.cos(0.71 * i + t)
            else:  # BN gamma
                v = 1.0 + 0.2 * torch.sin(0.9 * i + t)
            p.copy_(v.reshape(p.shape))
        for t, bn in enumerate(batch_norms(model)):
            i = torch.arange(bn.num_features, dtype=torch.float64)
            bn.running_mean.copy_(0.1 * torch.sin(1.3 * i + t))
            bn.running_var.copy_(1.0 + 0.5 * torch.sin(0.8 * i + t) ** 2)


def write_fixture(path, depth, in_channels, image_size, classes, base_width, batch):
    torch.manual_seed(depth * 1000 + image_size)
    model = ResNet(depth, in_channels, classes, base_width).double()
    set_deterministic_parameters(model)
    params = our_buffer(model).clone()
    images = torch.randn(batch, in_channels, image_size, image_size, dtype=torch.float64)
    labels = torch.arange(batch) * 7 % classes

    model.train()
    model.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    running = our_buffer(model)[grad.numel():]
    model.eval()
    with torch.no_grad():
        eval_logits = model(images)

    resnet20 = sum(p.numel() for p in ResNet().parameters())
    with open(path, "w") as out:
        out.write(f"# written by examples/resnet/tools/make_torch_fixtures.py (torch {torch.__version__})\n")
        out.write(f"config 6 {depth} {in_channels} {image_size} {classes} {base_width} {batch}\n")

        def put(name, values):
            values = values.reshape(-1).tolist()
            out.write(f"{name} {len(values)}\n")
            for k in range(0, len(values), 8):
                out.write(" ".join(f"{v:.10e}" for v in values[k:k + 8]) + "\n")

        put("images", images)
        out.write(f"labels {batch}\n" + " ".join(str(int(y)) for y in labels) + "\n")
        put("params", params)
        put("loss", loss.detach())
        put("grad", grad)
        put("running", running)
        put("eval_logits", eval_logits)
        out.write(f"resnet20_trainable 1\n{resnet20}\n")
    print(f"{path}: {grad.numel()} trainable + {running.numel()} running, loss {loss.item():.6f}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    assert sum(p.numel() for p in ResNet().parameters()) == 272474
    write_fixture(os.path.join(out_dir, "resnet8_w4_3x8x8.txt"), 8, 3, 8, 10, 4, 2)
    write_fixture(os.path.join(out_dir, "resnet14_w2_1x7x7.txt"), 14, 1, 7, 5, 2, 3)


if __name__ == "__main__":
    main()
