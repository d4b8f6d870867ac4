"""Locate the files under `data_manifests/` (band tables, statistics, regions, nomenclatures)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml


@cache
def manifests_dir() -> Path:
    """The `data_manifests/` folder: beside the package in a checkout, inside it when installed."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "data_manifests", here / "_data_manifests"):
        if (candidate / "bands.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"data_manifests/ not found beside {here} nor inside it; reinstall rs-ssl "
        "(`pip install -e .` from a checkout) so that its band tables are present"
    )


def manifest_path(*parts: str) -> Path:
    """Path of a file under data_manifests/."""
    return manifests_dir().joinpath(*parts)


@cache
def load_yaml(*parts: str) -> dict:
    """Parse a YAML file under data_manifests/ (cached; callers must not mutate the result)."""
    with open(manifest_path(*parts), encoding="utf-8") as f:
        return yaml.safe_load(f)
