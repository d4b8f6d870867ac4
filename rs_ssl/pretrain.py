"""`rs-ssl pretrain`: train (`rs_ssl.training.train`) or, with --dry-run, resolve and print the run."""

from __future__ import annotations

import dataclasses
from typing import Any

from rs_ssl.bands import load_stats
from rs_ssl.config import PretrainConfig, default_out
from rs_ssl.data import resolve_data_bands
from rs_ssl.runs import prepare_out, write_config
from rs_ssl.training import build_method, check, pretrain_data, select_bands, train


def dry_run(cfg: PretrainConfig) -> dict[str, Any]:
    """`pretrain --dry-run`: resolve the configuration and build the model, print both, write config.yaml.

    With --data the bands are checked on one sample (one raster header per file of a scene folder);
    without it the data checks are skipped and the dry run says so. Nothing is trained.
    """
    data_info: dict[str, Any] = {"checked": False}
    if cfg.data is None:
        # `--bands auto` without --data: the embedded sample's bands, as a run without --data would use.
        selection = resolve_data_bands(cfg.bands, cfg.sensor, None, cfg.format, cfg.zoom)
        print(
            "note: no --data given: data checks skipped (the recipe's dataset path is yours: give --data PATH to check its bands)"
        )
    else:
        selection = select_bands(cfg)
        # One batch of one sample checks the bands; --split and --sampler are not applied (any
        # sample will do).
        _, info = pretrain_data(
            cfg, selection, samples_per_epoch=cfg.batch_size, subset=1, split=None, sampler="rs-ssl"
        )
        data_info = {"checked": True, "data": info["data"], "format": info["format"]}
        print(f"data: {info['data']} ({info['format']}): bands {','.join(selection.names)} found")
    stats = load_stats(selection)
    # The dataset's length is not read: MoCo's queue is shown unclamped (the run clamps it to the
    # data), and one step per epoch stands for the run's length, which scales moco-v3's warm-up.
    method = build_method(cfg, selection, stats, total_steps=cfg.epochs, steps_per_epoch=1)
    resolved = {
        "lr_effective": method.scaled_lr(),  # the method's own batch scaling, on one device
        **method.resolved_hyper_parameters(),
        "augs": method.views.config.get("preset", cfg.augs),
        "gradient_clip": method.defaults.gradient_clip,
        "parameters": sum(p.numel() for p in method.parameters()),
        "backbone_parameters": sum(p.numel() for p in method.backbone.parameters()),
        "bands": ",".join(selection.names),
    }
    out = prepare_out(cfg.out or default_out("pretrain"))
    # Written with dry_run off: `rs-ssl pretrain --config OUT/config.yaml` then trains this configuration.
    path = write_config(
        out,
        "pretrain",
        dataclasses.replace(cfg, dry_run=False),
        extra={"dry_run": resolved, "data": data_info},
    )
    import yaml

    print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False), end="")
    print(yaml.safe_dump({"resolved": resolved}, sort_keys=False), end="")
    print(
        f"dry run: {resolved['parameters']:,} parameters ({cfg.backbone} {resolved['backbone_parameters']:,}); "
        f"lr_effective {resolved['lr_effective']:.6g} on one device at batch {cfg.batch_size} (N devices: N times that); "
        f"nothing trained; config: {path}"
    )
    return {"config": str(path), **resolved}


def run(cfg: PretrainConfig) -> dict[str, Any]:
    if not cfg.dry_run:
        return train(cfg)
    check(cfg)
    return dry_run(cfg)
