"""Run folders: writability check up front, resolved config.yaml, metrics.json, atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from rs_ssl import __version__
from rs_ssl.config import to_dict
from rs_ssl.errors import RsSslError


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


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
