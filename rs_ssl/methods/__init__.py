"""One small LightningModule per SSL method; `METHODS` maps `--method` names to them.

The registry itself (`table.METHOD_TABLE`) is torch-free; a class is imported when it is looked up
(`METHODS["simclr"]`, `from rs_ssl.methods import SimCLR`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from rs_ssl.methods.table import METHOD_TABLE, MethodDefaults, MethodSpec


class _Classes(Mapping):
    """`--method` name -> class, read from the registry when looked up."""

    def __getitem__(self, name: str) -> type:
        return METHOD_TABLE[name].load()

    def __iter__(self) -> Iterator[str]:
        return iter(METHOD_TABLE)

    def __len__(self) -> int:
        return len(METHOD_TABLE)


METHODS: Mapping[str, type] = _Classes()


def __getattr__(name: str) -> Any:
    """`from rs_ssl.methods import SimCLR`: a registered class by its class name, imported on use."""
    if name == "SSLMethod":
        from rs_ssl.methods.base import SSLMethod

        return SSLMethod
    for s in METHOD_TABLE.values():
        if s.target.rpartition(":")[2] == name:
            return s.load()
    raise AttributeError(f"module 'rs_ssl.methods' has no attribute {name!r}")


__all__ = [
    "METHODS",
    "METHOD_TABLE",
    "MethodDefaults",
    "MethodSpec",
    "MoCoV2",
    "MoCoV3",
    "RelativePatchLocation",
    "SSLMethod",
    "SimCLR",
]
