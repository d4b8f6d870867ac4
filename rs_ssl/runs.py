"""Run folders: writability check up front, resolved config.yaml, metrics.json, the loss history,
atomic writes; and the readers of what a run folder holds."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from rs_ssl import __version__
from rs_ssl.config import to_dict
from rs_ssl.errors import RsSslError, UsageError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A crash at any moment leaves either the old file or the new one, never a torn file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def prepare_out(out: str | Path) -> Path:
    """Create the output folder and prove it is writable before any long work starts."""
    p = Path(out)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / ".rs_ssl_write_test"
        with open(probe, "wb") as f:
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as e:
        raise RsSslError(
            f"--out {p}: cannot write there ({e.strerror or e}); choose a writable folder"
        ) from None
    return p


def write_config(out: Path, command: str, cfg: Any, extra: dict[str, Any] | None = None) -> Path:
    """Write the resolved configuration; `rs-ssl COMMAND --config out/config.yaml` reproduces the run."""
    values = to_dict(cfg)
    body = {"command": command, "rs_ssl_version": __version__, **values}
    text = yaml.safe_dump(body, sort_keys=False)
    if extra:
        text += "# resolved at run time (informational, not read back):\n"
        text += "".join(
            f"# {line}\n" for line in yaml.safe_dump(extra, sort_keys=False).splitlines()
        )
    path = Path(out) / "config.yaml"
    atomic_write_text(path, text)
    return path


def write_metrics(out: Path, metrics: dict[str, Any]) -> Path:
    path = Path(out) / "metrics.json"
    atomic_write_text(
        path, json.dumps(metrics, indent=2, sort_keys=False, default=_json_default) + "\n"
    )
    return path


def read_metrics(out: Path) -> dict[str, Any]:
    """The metrics.json that `write_metrics` wrote into a run folder."""
    return json.loads((Path(out) / "metrics.json").read_text(encoding="utf-8"))


def write_loss_history(out: Path, steps: list[int], losses: list[float]) -> Path:
    """`loss_history.csv` (step,loss; every optimiser step) at the end of a pretraining run."""
    path = Path(out) / "loss_history.csv"
    atomic_write_text(
        path,
        "step,loss\n" + "".join(f"{s},{v!r}\n" for s, v in zip(steps, losses, strict=True)),
    )
    return path


def read_loss_history(out: Path) -> tuple[list[int], list[float]]:
    """(steps, losses) of a run folder, from the `loss_history.csv` written at the end of a run."""
    steps, losses = [], []
    with open(Path(out) / "loss_history.csv", newline="") as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            losses.append(float(row["loss"]))
    return steps, losses


def read_run(path: Path) -> dict[str, Any]:
    """A run folder's command, config and metrics."""
    if not path.is_dir():
        raise UsageError(f"{path}: not a run folder")
    mfile, cfile = path / "metrics.json", path / "config.yaml"
    if not mfile.is_file():
        raise UsageError(
            f"{path}: no metrics.json; give folders written by rs-ssl pretrain/probe/finetune/augsearch"
        )
    metrics = read_metrics(path)
    config = yaml.safe_load(cfile.read_text(encoding="utf-8")) if cfile.is_file() else {}
    command = metrics.get("command") or config.get("command")
    return {
        "path": path,
        "name": path.name,
        "command": command,
        "metrics": metrics,
        "config": config or {},
    }


def losses_of(run: Path) -> tuple[list[int], list[float]]:
    """(steps, losses) of a pretraining run: its loss_history.csv, or for runs written before that file
    existed, the `train/loss_step` column of Lightning's logs/*/metrics.csv."""
    if (run / "loss_history.csv").is_file():
        return read_loss_history(run)
    merged = {}
    for path in sorted((run / "logs").rglob("metrics.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("train/loss_step") not in (None, ""):
                    merged[int(row["step"])] = float(row["train/loss_step"])
    keys = sorted(merged)
    return keys, [merged[k] for k in keys]


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
