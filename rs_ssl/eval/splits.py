"""Train/validation/test splits for evaluation and seeded, stratified label fractions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from rs_ssl.bands import BandSelection
from rs_ssl.errors import DataError, UsageError
from rs_ssl.split_names import SPLIT_ORDER


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


def stratified_split(
    targets: torch.Tensor, multilabel: bool, seed: int, val: float = 0.2, test: float = 0.2
) -> dict[str, list[int]]:
    """Seeded 60/20/20 split within each stratum. A stratum of n >= 2 gives the test split
    max(1, round(0.2 n)) samples and the validation split round(0.2 n) when n >= 3 (the rest train),
    so every class with two samples is both trained on and tested."""
    rng = np.random.default_rng(seed)
    s = strata(targets, multilabel)
    out: dict[str, list[int]] = {k: [] for k in SPLIT_ORDER}
    for c in np.unique(s):
        idx = rng.permutation(np.flatnonzero(s == c))
        n = len(idx)
        n_test = max(1, round(test * n)) if n >= 2 else 0
        n_val = round(val * n) if n >= 3 else 0
        out["test"] += idx[:n_test].tolist()
        out["validation"] += idx[n_test : n_test + n_val].tolist()
        out["train"] += idx[n_test + n_val :].tolist()
    return {k: sorted(v) for k, v in out.items()}


def fraction_indices(
    targets: torch.Tensor, multilabel: bool, fraction: float, seed: int
) -> list[int]:
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
        raise UsageError(
            f"--label-fraction {spec!r}: expected numbers such as 0.01,0.1,1.0"
        ) from None
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


def carve_validation(
    train: list[int], targets: torch.Tensor, multilabel: bool, seed: int, fraction: float = 0.2
) -> tuple[list[int], list[int], str]:
    """A seeded stratified validation split carved out of `train`: returns (train, validation, how).

    Each stratum of n >= 2 training samples gives max(1, round(fraction n)) to validation; when
    that leaves none (every class seen once), one seeded random training sample is held out.
    Hyper-parameters are then never chosen on the samples the head is fitted to.
    """
    if len(train) < 2:
        raise DataError(
            f"{len(train)} training sample(s): too few to hold out a validation split "
            "(hyper-parameters must not be chosen on the training split); give more labelled samples"
        )
    rng = np.random.default_rng(seed)
    s = strata(targets[train], multilabel)
    val: list[int] = []
    for c in np.unique(s):
        idx = rng.permutation(np.flatnonzero(s == c))
        if len(idx) >= 2:
            val += [train[i] for i in idx[: max(1, round(fraction * len(idx)))]]
    how = f"seeded stratified {fraction:.0%} of the training split (seed {seed})"
    if not val:
        val = [train[int(rng.integers(len(train)))]]
        how = f"one seeded random training sample (seed {seed}; every class has a single training sample)"
    held = set(val)
    return [i for i in train if i not in held], sorted(val), how


def ensure_validation(
    idx: dict[str, list[int]], targets: torch.Tensor, multilabel: bool, seed: int
) -> str:
    """Give `idx` a validation split when it has none (carved out of train, in place); returns
    where the validation split comes from, for `Splits.info["validation_source"]`."""
    if idx["validation"]:
        return "validation split"
    idx["train"], idx["validation"], how = carve_validation(idx["train"], targets, multilabel, seed)
    return f"carved out of train: {how}"


def load_splits(
    data: str | None,
    fmt: str,
    selection: BandSelection,
    *,
    patch: int,
    level: int,
    seed: int,
    skip_bad: bool,
) -> Splits:
    """Labelled data in three splits: the data's own (split folders, split lists, BigEarthNet's
    metadata.parquet) or, where it has none, a seeded stratified 60/20/20 split. Data with train and
    test but no validation split gets one carved out of train (see `carve_validation`). Where the
    splits came from is recorded in `info` (`split_source`, `official`, `validation_source`)."""
    from rs_ssl.data import labelled_dataset

    ds, info = labelled_dataset(
        data, fmt, selection, split=None, patch=patch, level=level, skip_bad=skip_bad
    )
    records = getattr(ds, "records", [])
    official = any(getattr(r, "splits", ()) for r in records)
    if official:
        idx = {k: [i for i, r in enumerate(records) if k in r.splits] for k in SPLIT_ORDER}
        source = info.get("split_source") or "the dataset's own split"
    else:
        idx = stratified_split(targets_of(ds), ds.multilabel, seed)
        source = f"seeded stratified 60/20/20 split (seed {seed}); the data defines no split"
    test_source = "test split" + (" of the dataset" if official else "")
    if official and not idx["test"] and idx["validation"]:
        # train/val only (Imagenette, many ImageFolder copies): val is the published evaluation split
        idx["test"], idx["validation"] = idx["validation"], []
        test_source = "the dataset's validation split (it defines no test split)"
    if not idx["train"] or not idx["test"]:
        raise DataError(
            f"{info.get('data')}: {len(idx['train'])} training and {len(idx['test'])} test samples; "
            "need at least one of each (give more labelled samples)"
        )
    val_source = ensure_validation(idx, targets_of(ds), ds.multilabel, seed)
    if official and not val_source.startswith("carved"):
        val_source += " of the dataset"
    parts = {k: Subset(ds, v) for k, v in idx.items()}
    overlap = {
        f"{a}&{b}": len(set(idx[a]) & set(idx[b]))
        for a, b in (("train", "validation"), ("train", "test"), ("validation", "test"))
    }
    split_info = {
        "split_source": source,
        "official": official,
        "validation_source": val_source,
        "test_source": test_source,
        "sizes": {k: len(v) for k, v in idx.items()},
        "data": info,
    }
    if any(overlap.values()):
        split_info["overlap"] = overlap  # TorchGeo's fixtures list the same files in several splits
    return Splits(parts, list(ds.classes), bool(ds.multilabel), split_info)
