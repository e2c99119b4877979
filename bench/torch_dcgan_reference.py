"""PyTorch reference for bench/train_throughput.py: the pytorch/examples DCGAN update (dcgan/main.py), same
architecture as ours, timed on random data. Runs in the separate torch env (.venv-torch, see scripts/setup_bench.sh).

Prints one JSON line: {"images_per_sec": ..., "steps": ..., "batch": ..., "threads": ...}.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import nn


def generator(nz: int, ngf: int, nc: int, size: int, k: int) -> nn.Sequential:
    n = int(math.log2(size // 4))
    width = ngf * 2 ** (n - 1)
    pad = (k - 2) // 2 if k == 4 else 2
    layers: list[nn.Module] = [nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
    for _ in range(n - 1):
        layers += [nn.ConvTranspose2d(width, width // 2, k, 2, pad, output_padding=0 if k == 4 else 1, bias=False),
                   nn.BatchNorm2d(width // 2), nn.ReLU(True)]
        width //= 2
    layers += [nn.ConvTranspose2d(width, nc, k, 2, pad, output_padding=0 if k == 4 else 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(ndf: int, nc: int, size: int, k: int) -> nn.Sequential:
    n = int(math.log2(size // 4))
    pad = (k - 2) // 2 if k == 4 else 2
    layers: list[nn.Module] = [nn.Conv2d(nc, ndf, k, 2, pad, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    width = ndf
    for _ in range(n - 1):
        layers += [nn.Conv2d(width, width * 2, k, 2, pad, bias=False), nn.BatchNorm2d(width * 2),
                   nn.LeakyReLU(0.2, inplace=True)]
        width *= 2
    layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False), nn.Flatten(), nn.Sigmoid()]
    return nn.Sequential(*layers)


def weights_init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--nz", type=int, default=100)
    p.add_argument("--kernel", type=int, default=4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    netG = generator(args.nz, args.ngf, 3, args.size, args.kernel)
    netD = discriminator(args.ndf, 3, args.size, args.kernel)
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
    b = args.batch

    def step() -> None:
        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        label = torch.full((b,), 1.0)
        errD_real = criterion(netD(real).view(-1), label)
        errD_real.backward()
        noise = torch.randn(b, args.nz, 1, 1)
        fake = netG(noise)
        label.fill_(0.0)
        errD_fake = criterion(netD(fake.detach()).view(-1), label)
        errD_fake.backward()
        optD.step()
        # (2) Update G: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(1.0)
        errG = criterion(netD(fake).view(-1), label)
        errG.backward()
        optG.step()

    for _ in range(args.warmup):
        step()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    elapsed = time.perf_counter() - t
    print(json.dumps({"images_per_sec": args.steps * b / elapsed, "steps": args.steps, "batch": b,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "cpu_capability": torch.backends.cpu.get_cpu_capability()}))


if __name__ == "__main__":
    main()
