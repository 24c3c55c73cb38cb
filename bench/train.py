"""Stage-1 throughput of the real engine against the bare model train-step ceiling.

engine:  `asymcl.engine.stage1.stage1_epoch` on synthetic packed uint8 data held on the device
         (index gather, float conversion, on-device rotation/flip, grey->RGB, normalisation,
         AFCL, NaN check with its per-step host sync, Adam), one epoch = --steps batches.
ceiling: the same encoder + projection head, a float batch already on the device and
         normalised, forward + AFCL + backward + Adam step; nothing else.

Both use bf16 autocast and channels_last on CUDA and fp32 on CPU, the same batch size and
warm-up. Prints both rates and their ratio (DESIGN target: >= 0.70) and writes
bench/results/train_<device>.json.

    python3 bench/train.py --device cpu --arch resnet18 --size 28 --batch 128 --steps 4
    python3 bench/train.py --device cuda --steps 50          # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from asymcl import models
from asymcl.augment import BatchAugment
from asymcl.losses import AFCL
from asymcl.engine.batches import BatchMaker
from asymcl.engine.device import DeviceContext, resolve_device
from asymcl.engine.stage1 import stage1_epoch

RESULTS = Path(__file__).resolve().parent / "results"


def _model(arch: str, ctx: DeviceContext) -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.build_contrastive_model(arch, "none").to(ctx.device)
    if ctx.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def engine_rate(args, ctx: DeviceContext, channels: int) -> float:
    model = _model(args.arch, ctx)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = AFCL(eta=60.0, gamma=1.0)
    n = args.batch * args.steps
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, args.size, args.size), dtype=torch.uint8, generator=g)
    targets = (torch.rand(n, generator=g) < 0.3).long().to(ctx.device)
    batches = BatchMaker(images, ctx, BatchAugment())
    kw = dict(batch_size=args.batch, shuffle_gen=torch.Generator().manual_seed(0),
              aug_gen=torch.Generator(device=ctx.device).manual_seed(1), ctx=ctx)
    stage1_epoch(model, loss, opt, batches, targets, **kw)  # warm-up epoch (autotuning, allocator)
    ctx.synchronize()
    t0 = time.perf_counter()
    rec = stage1_epoch(model, loss, opt, batches, targets, **kw)
    ctx.synchronize()
    return rec["images"] / (time.perf_counter() - t0)


def ceiling_rate(args, ctx: DeviceContext) -> float:
    model = _model(args.arch, ctx)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = AFCL(eta=60.0, gamma=1.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g).to(ctx.device)
    if ctx.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.rand(args.batch, generator=g) < 0.3).long().to(ctx.device)

    def step() -> None:
        with ctx.autocast():
            z = model(x)
        value = loss(z.float(), y)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()

    for _ in range(args.steps):  # warm-up, as many steps as the engine's warm-up epoch
        step()
    ctx.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    ctx.synchronize()
    return args.batch * args.steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=sorted(models.FEATURE_DIMS), default="resnet18")
    p.add_argument("--size", type=int, default=28, help="image side in pixels (FMNIST 28, ISIC 128)")
    p.add_argument("--channels", type=int, choices=[1, 3], default=None,
                   help="stored channels (default: 1 at 28 px, else 3)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=4, help="timed steps per measurement")
    p.add_argument("--device", default="auto")
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/train_<device>.json)")
    args = p.parse_args()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    ctx = DeviceContext.for_device(resolve_device(args.device))
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    channels = args.channels or (1 if args.size == 28 else 3)

    ceiling = ceiling_rate(args, ctx)
    engine = engine_rate(args, ctx, channels)
    ratio = engine / ceiling
    name = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else (platform.processor() or platform.machine())
    result = {
        "device": ctx.device.type,
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "arch": args.arch,
        "image_size": args.size,
        "stored_channels": channels,
        "batch": args.batch,
        "steps": args.steps,
        "precision": "bf16 autocast, channels_last" if ctx.amp_dtype else "fp32",
        "engine_images_per_s": engine,
        "ceiling_images_per_s": ceiling,
        "ratio": ratio,
        "target_ratio": 0.70,
        "torch": torch.__version__,
    }
    print(f"{args.arch} {args.size}px batch {args.batch} on {ctx.device.type} ({name}): "
          f"engine {engine:.1f} images/s, bare train step {ceiling:.1f} images/s, ratio {ratio:.2f} (target >= 0.70)")
    out = args.out or RESULTS / f"train_{ctx.device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
