"""Train/validation/test splits for evaluation and seeded, stratified label fractions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from rs_ssl.bands import BandSelection
from rs_ssl.errors import DataError, UsageError

SPLITS = ("train", "validation", "test")


@dataclass
class Splits:
    """The three evaluation splits of one labelled dataset."""

    parts: dict[str, Dataset]
    classes: list[str]
    multilabel: bool
    info: dict = field(default_factory=dict)


def strata(targets: torch.Tensor, multilabel: bool) -> np.ndarray:
    """A stratum per sample: its class, or for multi-label its rarest label (-1: no label)."""
    if not multilabel:
        return targets.numpy().astype(int)
    y = targets.numpy() > 0.5
    freq = y.sum(0)
    out = np.full(len(y), -1, dtype=int)
    for i, row in enumerate(y):
        if row.any():
            labs = np.flatnonzero(row)
            out[i] = labs[np.argmin(freq[labs])]
    return out


def stratified_split(targets: torch.Tensor, multilabel: bool, seed: int, val: float = 0.2,
                     test: float = 0.2) -> dict[str, list[int]]:
    """Seeded 60/20/20 split within each stratum. A stratum of n >= 2 gives the test split
    max(1, round(0.2 n)) samples and the validation split round(0.2 n) when n >= 3 (the rest train),
    so every class with two samples is both trained on and tested."""
    rng = np.random.default_rng(seed)
    s = strata(targets, multilabel)
    out: dict[str, list[int]] = {k: [] for k in SPLITS}
    for c in np.unique(s):
        idx = rng.permutation(np.flatnonzero(s == c))
        n = len(idx)
        n_test = max(1, round(test * n)) if n >= 2 else 0
        n_val = round(val * n) if n >= 3 else 0
        out["test"] += idx[:n_test].tolist()
        out["validation"] += idx[n_test:n_test + n_val].tolist()
        out["train"] += idx[n_test + n_val:].tolist()
    return {k: sorted(v) for k, v in out.items()}


def fraction_indices(targets: torch.Tensor, multilabel: bool, fraction: float, seed: int) -> list[int]:
    """A seeded, stratified `fraction` of the samples: round(fraction * n) of each stratum, at least one."""
    if not 0 < fraction <= 1:
        raise UsageError(f"--label-fraction {fraction}: must be in (0, 1]")
    if fraction == 1:
        return list(range(len(targets)))
    rng = np.random.default_rng(seed)
    s = strata(targets, multilabel)
    keep: list[int] = []
    for c in np.unique(s):
        idx = rng.permutation(np.flatnonzero(s == c))
        keep += idx[: max(1, round(fraction * len(idx)))].tolist()
    return sorted(keep)


def parse_fractions(spec: str) -> list[float]:
    try:
        out = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--label-fraction {spec!r}: expected numbers such as 0.01,0.1,1.0") from None
    if not out or any(not 0 < f <= 1 for f in out):
        raise UsageError(f"--label-fraction {spec!r}: each fraction must be in (0, 1]")
    return sorted(set(out))


def targets_of(ds: Dataset) -> torch.Tensor:
    """Labels of every item without reading the images (LabelledDataset keeps them in `targets`)."""
    base, idx = ds, None
    if isinstance(ds, Subset):
        base, idx = ds.dataset, ds.indices
    t = getattr(base, "targets", None)
    if t is None:
        t = [base[i]["label"] for i in range(len(base))]
    t = torch.stack(list(t))
    return t[list(idx)] if idx is not None else t


def load_splits(data: str | None, fmt: str, selection: BandSelection, *, patch: int, level: int,
                seed: int, skip_bad: bool) -> Splits:
    """Labelled data in three splits: the data's own (BigEarthNet metadata, MillionAID folders) or,
    where it has none, a seeded stratified 60/20/20 split (recorded in `info["split_source"]`)."""
    from rs_ssl.data import labelled_dataset

    ds, info = labelled_dataset(data, fmt, selection, split=None, patch=patch, level=level, skip_bad=skip_bad)
    records = getattr(ds, "records", [])
    if any(getattr(r, "split", None) for r in records):
        from rs_ssl.data.datasets import SPLIT_ALIASES

        names = [SPLIT_ALIASES.get(r.split or "", r.split) for r in records]
        idx = {k: [i for i, n in enumerate(names) if n == k] for k in SPLITS}
        source = "dataset"
    else:
        idx = stratified_split(targets_of(ds), ds.multilabel, seed)
        source = f"seeded stratified 60/20/20 split (seed {seed}); the data defines no split"
    if not idx["train"] or not idx["test"]:
        raise DataError(f"{info.get('data')}: {len(idx['train'])} training and {len(idx['test'])} test samples; "
                        "need at least one of each (give more labelled samples)")
    val_source = "validation"
    if not idx["validation"]:
        # Too few samples for a validation split (mini data): hyperparameters are then chosen on train.
        idx["validation"] = idx["train"]
        val_source = "train (no validation samples: sweep and threshold chosen on the training split)"
    parts = {k: Subset(ds, v) for k, v in idx.items()}
    split_info = {"split_source": source, "validation_source": val_source,
                  "sizes": {k: len(v) for k, v in idx.items()}, "data": info}
    return Splits(parts, list(ds.classes), bool(ds.multilabel), split_info)
