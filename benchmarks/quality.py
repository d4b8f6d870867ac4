"""Representation quality at a fixed budget: rs-ssl's default recipe against a plain hand-written SimCLR
loop, TorchGeo's SimCLRTask/MoCoTask and random initialisation, side by side in one run, each backbone
probed by the same `rs-ssl probe` on the same held-out images.

Split (fixed, stated in the JSON): the dataset's own split where it has one (split folders, or
split lists such as TorchGeo's `uc_merced-train.txt` / `resisc45-val.txt`), otherwise the probe's
seeded stratified 60/20/20 split (`rs_ssl.eval.splits.load_splits`, seed --seed); every pretraining
arm sees only a seeded subset of the *train* part (--per-class images of each class), never its
validation or test images. The probe chooses its hyper-parameters on the validation part and
reports the test part.

Held-out check (data the defaults were not tuned on): point --data at another labelled RGB scene
collection, e.g. a TorchGeo UC Merced root (`.../ucmerced`, 21 classes, 100 each: --per-class 48
keeps 1,008 images) or RESISC45 (`.../resisc45`, NWPU-RESISC45/<class>/), with the same flags.

CPU-sized default (ResNet-18, 64 px, 8 epochs, 48 images per class = 1,440 on AID):

    python benchmarks/quality.py                      # SimCLR arms on ../shared/data/aid_scenes
    python benchmarks/quality.py --methods simclr,mocov2,mocov3

GPU-sized: `--size 224 --epochs 100 --per-class 0 --batch-size 512 --devices auto`.

Training noise: `--train-seeds 0,1,2` repeats every pretraining arm with each training seed (the
split, the pretraining images and the probe stay those of --seed) and adds a table of the mean and
standard deviation over the seeds; compare arms by that mean, not by one seed. `--summarise
A/quality.json B/quality.json` prints that table for the rows of several runs of the same split.

Isolating a difference: `--plain-variant NAME=key:value,...` trains the plain loop with one of
rs-ssl's settings (batch, lr, schedule, clip, gain_space, head_bn); compare the `val_accuracy`
column (the probe's validation part), never the test accuracy, when choosing.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rs_ssl.cli import run_for_metrics

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TORCHGEO_METHODS = ("simclr", "mocov2", "mocov3")


# -- data ------------------------------------------------------------------------------------------


# The split lists `prepared_tree` writes, in names rs-ssl's split-list reader finds (data/splits.py).
PREPARED_LISTS = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}


def prepared_tree(data: Path, out: Path, size: int) -> Path:
    """The labelled folder resized once to `size` px by rs-ssl's own reader and written as PNG (lossless):
    every arm and every probe then decodes small images instead of the 256 px JPEGs.

    A dataset with its own split (TorchGeo's `uc_merced-train.txt`, `resisc45-test.txt`, split
    folders, ...) keeps it: the split is written as `train.txt`/`val.txt`/`test.txt` lists of the
    prepared files, so pretraining and the probe use the published split on held-out datasets too.
    Without one, the probe's seeded split applies (`load_splits`)."""
    from PIL import Image

    from rs_ssl.bands import resolve_bands
    from rs_ssl.data import labelled_dataset

    root = out / f"prepared_{size}px"
    done = root / ".complete"
    if done.exists():
        return root
    ds, _ = labelled_dataset(str(data), "folder", resolve_bands("3"), split=None, patch=size)
    lists: dict[str, list[str]] = {k: [] for k in PREPARED_LISTS}
    for i, rec in enumerate(ds.records):
        img = ds[i]["image"].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        name = f"{rec.labels[0]}/{Path(rec.path).stem}.png"
        target = root / name
        if target.exists():  # two source files of one class differ only in their suffix
            raise SystemExit(f"{rec.path}: a second image of class {rec.labels[0]} named {name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(target)
        for split in rec.splits:
            lists[split].append(name)
    for split, names in lists.items():
        if names:  # no list for a split the data lacks: the probe then carves validation from train
            (root / PREPARED_LISTS[split]).write_text("".join(n + "\n" for n in names))
    done.write_text(str(data))
    return root


def pretrain_tree(
    data: Path, out: Path, seed: int, per_class: int, size: int
) -> tuple[Path, dict[str, Any]]:
    """A class-folder tree of symbolic links to `per_class` seeded images of each class of the probe's
    train split (0: all of it): the pretraining images of every arm."""
    from rs_ssl.bands import resolve_bands
    from rs_ssl.eval.splits import load_splits

    splits = load_splits(
        str(data), "folder", resolve_bands("3"), patch=size, level=1, seed=seed, skip_bad=False
    )
    train = splits.parts["train"]
    by_class: dict[str, list[str]] = {}
    for i in train.indices:
        rec = train.dataset.records[i]
        by_class.setdefault(rec.labels[0], []).append(rec.path)
    rng = random.Random(seed)
    root = out / "pretrain_images"
    n = 0
    for cls, paths in sorted(by_class.items()):
        chosen = sorted(paths)
        rng.shuffle(chosen)
        chosen = chosen[:per_class] if per_class > 0 else chosen
        (root / cls).mkdir(parents=True, exist_ok=True)
        for p in chosen:
            link = root / cls / Path(p).name
            if not link.exists():
                link.symlink_to(Path(p).resolve())
        n += len(chosen)
    return root, {
        "split_source": splits.info["split_source"],
        "probe_sizes": splits.info["sizes"],
        "pretrain_images": n,
        "per_class": per_class,
        "seed": seed,
    }


def load_images(tree: Path, size: int) -> torch.Tensor:
    """Every image of the tree as one (N, 3, size, size) float tensor in DN, resized as `rs-ssl pretrain` does."""
    from rs_ssl.bands import resolve_bands
    from rs_ssl.data import pretrain_dataset

    ds, _ = pretrain_dataset(
        str(tree), "folder", resolve_bands("3"), patch=size, samples_per_epoch=1
    )
    return torch.stack([ds[i]["image"] for i in range(len(ds))])


def normaliser():
    """The probe's input normalisation (`FrozenEncoder`): DN -> standardised with the RGB statistics."""
    from rs_ssl.bands import load_stats, resolve_bands
    from rs_ssl.data.normalize import Normalize

    sel = resolve_bands("3")
    return Normalize(sel, load_stats(sel)), sel


def save_backbone(backbone: nn.Module, path: Path, method: str) -> Path:
    from rs_ssl.models import export_backbone

    return export_backbone(
        backbone,
        path,
        metadata={
            "timm_model": "resnet18",
            "in_chans": "3",
            "bands": "R,G,B",
            "sensor": "rgb",
            "method": method,
        },
    )


# -- the plain loop (the reference a user could write in an afternoon) -----------------------------


def plain_views(
    x: torch.Tensor, g: torch.Generator, offset: torch.Tensor | None = None
) -> torch.Tensor:
    """Crop of 20-100 % of the area (aspect 3/4-4/3) resized back, flips, per-band gain 0.6-1.4,
    brightness +-0.4, grayscale p 0.2; on standardised images, one affine grid per image.

    `offset` (per-band mean / std, shape (1, C, 1, 1)): the gain multiplies reflectance instead of
    the standardised values, z' = g z + (g - 1) mean / std, as rs-ssl's `gain` op does."""
    n, c = x.shape[:2]
    area = torch.empty(n).uniform_(0.2, 1.0, generator=g)
    ratio = torch.exp(torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=g))
    w, h = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
    cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - h)
    fx = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    fy = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * fx, cx, h * fy, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    gain = torch.empty(n, c, 1, 1).uniform_(0.6, 1.4, generator=g)
    v = v * gain + torch.empty(n, 1, 1, 1).uniform_(-0.4, 0.4, generator=g)
    if offset is not None:
        v = v + (gain - 1) * offset
    gray = torch.rand(n, 1, 1, 1, generator=g) < 0.2
    return torch.where(gray, v.mean(1, keepdim=True).expand_as(v), v)


def plain_nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2N rows (view 1 then view 2): positive of row i is row i +- N; self excluded."""
    z = F.normalize(z.float(), dim=1)
    n2 = z.shape[0]
    sim = (z @ z.t() / temperature).masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    target = (torch.arange(n2) + n2 // 2) % n2
    return F.cross_entropy(sim, target)


def plain_simclr(
    images: torch.Tensor,
    epochs: int,
    batch: int,
    seed: int,
    lr: float = 1e-3,
    temperature: float = 0.1,
    schedule: str = "constant",
    clip: float = 0.0,
    gain_space: str = "standardised",
    head_bn: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Adam at a constant `lr`, projector Linear-ReLU-Linear (512-512-128), no clipping, no schedule.

    The keywords move one factor at a time towards `rs-ssl pretrain`'s SimCLR (to find which of its
    differences costs accuracy): `schedule="cosine"` (per-step half cosine to 0, no warm-up),
    `clip` (gradient-norm clip, 0: none), `gain_space="reflectance"`, `head_bn` (BatchNorm after the
    projector's first Linear, as rs-ssl's and SimCLR's head)."""
    from rs_ssl.models import create_backbone

    norm, sel = normaliser()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = create_backbone("resnet18", sel)
    d = net.num_features
    bn = [nn.BatchNorm1d(d)] if head_bn else []
    head = nn.Sequential(nn.Linear(d, d), *bn, nn.ReLU(), nn.Linear(d, 128))
    params = [*net.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    total = epochs * (len(images) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)) if schedule == "cosine" else 1.0
    )
    offset = None
    if gain_space == "reflectance":
        from rs_ssl.bands import load_stats

        st = load_stats(sel)
        offset = (torch.as_tensor(st.mean) / torch.as_tensor(st.std)).float().view(1, -1, 1, 1)
    x_all = norm(images)
    losses, steps, t0 = [], 0, time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(x_all), generator=g).split(batch):
            if len(idx) < batch:  # drop the last partial batch, as `rs-ssl pretrain`
                continue
            x = x_all[idx]
            z = head(net(torch.cat([plain_views(x, g, offset), plain_views(x, g, offset)])))
            loss = plain_nt_xent(z, temperature)
            opt.zero_grad()
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
            steps += 1
    return net, {
        "seconds": round(time.perf_counter() - t0, 1),
        "steps": steps,
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "lr_effective": lr,
        "batch_size": batch,
    }


# -- TorchGeo ----------------------------------------------------------------------------------------


def torchgeo_task(method: str, size: int, batch: int):
    """TorchGeo's task with its defaults; for MoCo v2 the settings its docstring names for v2 (its
    defaults are v3's: lr 9.6 for SGD would diverge)."""
    import torchgeo.trainers as tg

    if method == "simclr":  # SimCLR v1 as rs-ssl's: 2-layer head, no memory bank
        return tg.SimCLRTask(
            model="resnet18", in_channels=3, size=size, version=1, layers=2, memory_bank_size=0
        )
    if method == "mocov2":
        return tg.MoCoTask(
            model="resnet18",
            in_channels=3,
            size=size,
            version=2,
            layers=2,
            hidden_dim=2048,
            output_dim=128,
            lr=0.03 * batch / 256,
            weight_decay=1e-4,
            temperature=0.07,
            memory_bank_size=min(65536, batch * 8),
        )
    return tg.MoCoTask(model="resnet18", in_channels=3, size=size, version=3, lr=0.6 * batch / 256)


def fold_unit_range_into_stem(
    backbone: nn.Module, mean: torch.Tensor, std: torch.Tensor
) -> nn.Module:
    """A ResNet trained on [0, 1] inputs rewritten to take standardised inputs `(x - mean) / std`, the
    probe's: conv1 weights times std per input band, and conv1's response to the constant `mean`
    subtracted from bn1's running mean. Exact away from conv1's zero padding (3 border pixels)."""
    conv, bn = backbone.conv1, backbone.bn1
    with torch.no_grad():
        shift = (conv.weight * mean.view(1, -1, 1, 1)).sum((1, 2, 3))
        conv.weight.mul_(std.view(1, -1, 1, 1))
        bn.running_mean.sub_(shift)
    return backbone


def torchgeo_pretrain(
    method: str, images: torch.Tensor, epochs: int, batch: int, seed: int, out: Path
):
    import lightning as L
    from torch.utils.data import DataLoader

    L.seed_everything(seed, verbose=False)
    task = torchgeo_task(method, images.shape[-1], batch)
    x01 = (
        images / 255.0
    )  # TorchGeo's augmentations (brightness, contrast with clipping) expect [0, 1]
    loader = DataLoader([{"image": x} for x in x01], batch_size=batch, shuffle=True, drop_last=True)
    trainer = L.Trainer(
        accelerator="cpu" if not torch.cuda.is_available() else "auto",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        default_root_dir=out,
    )
    t0 = time.perf_counter()
    trainer.fit(task, loader)
    seconds = time.perf_counter() - t0
    backbone = task.backbone.cpu().eval()
    from rs_ssl.bands import load_stats, resolve_bands

    st = load_stats(resolve_bands("3"))
    fold_unit_range_into_stem(
        backbone,
        torch.as_tensor(st.mean, dtype=torch.float32),
        torch.as_tensor(st.std, dtype=torch.float32),
    )
    loss = trainer.callback_metrics.get("train_loss")
    return backbone, {
        "seconds": round(seconds, 1),
        "steps": int(trainer.global_step),
        "final_loss": float(loss) if loss is not None else None,
        "lr_effective": float(task.hparams["lr"]),
        "batch_size": batch,
    }


# -- driver ------------------------------------------------------------------------------------------


def probe(
    data: Path, checkpoint: Path | None, out: Path, size: int, seed: int, devices: str
) -> dict[str, Any]:
    src = ["--checkpoint", str(checkpoint)] if checkpoint else ["--random-init", "--bands", "3"]
    m = run_for_metrics(
        [
            "probe",
            "--data",
            str(data),
            "--dataset",
            "folder",
            *src,
            "--size",
            str(size),
            "--seed",
            str(seed),
            "--devices",
            devices,
            "--out",
            str(out),
        ],
        out,
    )
    return {
        "accuracy": m["accuracy"],
        # The sweep's best validation accuracy: what tuning decisions read (never the test part).
        "val_accuracy": max(r["val_score"] for r in m["sweep"]["grid"]),
        "chosen": m["sweep"]["chosen"],
        "sizes": m["splits"]["sizes"],
    }


def run(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED / "aid_scenes"), help="labelled class-folder tree")
    ap.add_argument("--methods", default="simclr", help="comma list of simclr, mocov2, mocov3")
    ap.add_argument(
        "--arms",
        default="random,plain,rs_ssl,torchgeo",
        help="comma list of random, plain, rs_ssl, torchgeo",
    )
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument(
        "--per-class",
        type=int,
        default=48,
        help="pretraining images per class from the train split (0: all)",
    )
    ap.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="batch of the plain loop and TorchGeo (rs-ssl keeps its default)",
    )
    ap.add_argument(
        "--rs-variant",
        action="append",
        metavar="NAME=OPTIONS",
        help="an rs-ssl arm with extra `rs-ssl pretrain` options, e.g. 'paper=--augs simclr' "
        "(repeatable; default: one arm 'default' with no options, i.e. rs-ssl's defaults)",
    )
    ap.add_argument(
        "--plain-variant",
        action="append",
        metavar="NAME=KEY:VALUE,...",
        help="a plain-loop arm with changed keywords of plain_simclr (batch, lr, schedule, clip, "
        "gain_space, head_bn), e.g. 'b32=batch:32,lr:3.5e-4' (repeatable; default: one arm "
        "'plain' with the loop as the issue wrote it)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the split and the probe")
    ap.add_argument(
        "--train-seeds",
        default="",
        help="comma list of pretraining seeds, each arm run once per seed (default: --seed)",
    )
    ap.add_argument("--devices", default="auto")
    ap.add_argument("--out", default="runs/bench-quality")
    ap.add_argument(
        "--summarise",
        nargs="+",
        metavar="QUALITY_JSON",
        help="train nothing: print the mean ± std table of the rows of these quality.json files "
        "(runs of the same split with different --train-seeds)",
    )
    a = ap.parse_args(argv)
    if a.summarise:
        rows = [r for p in a.summarise for r in json.loads(Path(p).read_text())["rows"]]
        print(summary(rows))
        return {"rows": rows}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = prepared_tree(Path(a.data), out, a.size)
    tree, split = pretrain_tree(data, out, a.seed, a.per_class, a.size)
    arms = [s.strip() for s in a.arms.split(",") if s.strip()]
    methods = [s.strip() for s in a.methods.split(",") if s.strip()]
    seeds = [int(s) for s in a.train_seeds.split(",") if s.strip()] or [a.seed]
    images = load_images(tree, a.size) if {"plain", "torchgeo"} & set(arms) else None
    rows: list[dict[str, Any]] = []
    variants = [
        tuple(v.split("=", 1)) if "=" in v else (v, "") for v in (a.rs_variant or ["default="])
    ]

    def record(
        arm: str, method: str, weights: Path | None, train: dict[str, Any], seed: int | None
    ) -> None:
        several = seed is not None and len(seeds) > 1
        folder = f"probe-{arm}-{method}" + (f"-s{seed}" if several else "")
        result = probe(data, weights, out / folder, a.size, a.seed, a.devices)
        rows.append({"arm": arm, "method": method, "train_seed": seed, **train, **result})
        print(
            f"[quality] {arm:14s} {method:7s} accuracy {result['accuracy']:.3f}  {train}",
            flush=True,
        )
        (out / "quality.json").write_text(
            json.dumps({"split": split, "args": vars(a), "rows": rows}, indent=1)
        )

    if "random" in arms:
        record("random", "-", None, {}, None)
    for method, seed in ((m, s) for m in methods for s in seeds):
        tag = "" if len(seeds) == 1 else f"-s{seed}"
        for name, kw in plain_variants(a.plain_variant) if "plain" in arms else []:
            if method != "simclr":
                continue
            kw = {"batch": a.batch_size, **kw}
            net, info = plain_simclr(images, a.epochs, seed=seed, **kw)
            arm = "plain" if name == "plain" else f"plain:{name}"
            weights = out / f"{arm.replace(':', '_')}-simclr{tag}.safetensors"
            record(arm, method, save_backbone(net, weights, arm), {**info, "options": kw}, seed)
        for name, options in variants if "rs_ssl" in arms else []:
            run_dir = out / f"rs_ssl_{name}-{method}{tag}"
            argv_p = [
                "pretrain",
                "--data",
                str(tree),
                "--bands",
                "3",
                "--method",
                method,
                "--size",
                str(a.size),
                "--epochs",
                str(a.epochs),
                "--seed",
                str(seed),
                "--devices",
                a.devices,
                "--knn-k",
                "0",
                "--out",
                str(run_dir),
                *options.split(),
            ]
            m = run_for_metrics(argv_p, run_dir)
            info = {
                "seconds": m["train_seconds"],
                "steps": m["steps"],
                "first_loss": m["first_loss"],
                "final_loss": m["final_loss"],
                "lr_effective": m.get("lr_effective"),
                "options": options,
            }
            record(f"rs_ssl:{name}", method, run_dir / "backbone.safetensors", info, seed)
        if "torchgeo" in arms and method in TORCHGEO_METHODS:
            net, info = torchgeo_pretrain(
                method, images, a.epochs, a.batch_size, seed, out / f"torchgeo-{method}{tag}"
            )
            weights = out / f"torchgeo-{method}{tag}.safetensors"
            record(
                "torchgeo", method, save_backbone(net, weights, f"torchgeo-{method}"), info, seed
            )
    text = table(rows) + ("\n\n" + summary(rows) if len(seeds) > 1 else "")
    print(text)
    (out / "quality.md").write_text(text + "\n")
    return {"split": split, "rows": rows}


def plain_variants(specs: list[str] | None) -> list[tuple[str, dict[str, Any]]]:
    """`NAME=key:value,...` -> (NAME, keywords of plain_simclr), values typed by the keyword."""
    types = {"batch": int, "lr": float, "schedule": str, "clip": float, "gain_space": str}
    types["head_bn"] = lambda v: v.lower() in ("1", "true", "yes")
    out = []
    for spec in specs or ["plain="]:
        name, _, body = spec.partition("=")
        kw: dict[str, Any] = {}
        for item in filter(None, body.split(",")):
            key, _, value = item.partition(":")
            if key not in types:
                raise SystemExit(
                    f"--plain-variant {spec}: unknown key {key!r}; one of {sorted(types)}"
                )
            kw[key] = types[key](value)
        out.append((name, kw))
    return out


def summary(rows: list[dict[str, Any]]) -> str:
    """Mean and (sample) standard deviation of each arm's accuracies over its training seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["arm"], r["method"]), []).append(r)
    lines = [
        "| arm | method | seeds | test accuracy mean ± std | val accuracy mean ± std | train s mean |",
        "|---|---|---|---|---|---|",
    ]

    def ms(rs: list[dict[str, Any]], key: str) -> str:
        v = torch.tensor([float(r[key]) for r in rs], dtype=torch.float64)
        return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}"

    for (arm, method), rs in groups.items():
        secs = [r["seconds"] for r in rs if r.get("seconds") is not None]
        mean_s = f"{sum(secs) / len(secs):.0f}" if secs else ""
        lines.append(
            f"| {arm} | {method} | {len(rs)} | {ms(rs, 'accuracy')} | {ms(rs, 'val_accuracy')} | {mean_s} |"
        )
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| arm | method | seed | probe test accuracy | val accuracy | train s | steps | lr_effective | loss first -> last |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        loss = (
            f"{r['first_loss']:.2f} -> {r['final_loss']:.2f}"
            if r.get("first_loss") is not None
            else (f"-> {r['final_loss']:.2f}" if r.get("final_loss") is not None else "")
        )
        lr = "" if r.get("lr_effective") is None else f"{r['lr_effective']:.3g}"
        lines.append(
            f"| {r['arm']} | {r['method']} | {'' if r.get('train_seed') is None else r['train_seed']} | {r['accuracy']:.3f} | {r.get('val_accuracy', 0):.3f} | {r.get('seconds', '')} | {r.get('steps', '')} | "
            f"{lr} | {loss} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    run()
