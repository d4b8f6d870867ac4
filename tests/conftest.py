"""Shared fixtures: paths to the real samples in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RS_SSL_SHARED_DATA", ROOT.parent / "shared" / "data"))

# Two pytest-xdist workers on two cores: one intra-op thread each avoids oversubscription.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"real sample data not found at {SHARED}; set RS_SSL_SHARED_DATA")
    return SHARED


@pytest.fixture(scope="session")
def s2_scene(shared_data: Path) -> Path:
    return shared_data / "sentinel2_l1c_scene"
