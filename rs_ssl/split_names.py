"""Split names as datasets spell them and the canonical names rs-ssl uses: the one table read by the
data layer, the evaluation code and the CLI's `--split` choices (no imports, so `rs-ssl --help`
stays fast)."""

from __future__ import annotations

# Split names as datasets spell them -> the names rs-ssl uses (`validation`, as BigEarthNet v2's
# metadata.parquet and the evaluation code do).
SPLIT_ALIASES = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}
SPLIT_ORDER = ("train", "validation", "test")


def split_sort_key(name: str) -> tuple[int, str]:
    """Sort key of canonical split names: train, validation, test, then any other by name."""
    return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)


def canonical_split(name: str | None) -> str | None:
    """`val`/`valid` -> `validation`; other names are kept (lower-cased)."""
    if name is None or str(name).strip() == "" or str(name) == "None":
        return None
    s = str(name).strip().lower()
    return SPLIT_ALIASES.get(s, s)
