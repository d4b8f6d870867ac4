"""A per-process bound on the rasters the readers hold open.

Readers (`StackedRaster`, `Sentinel2Scene`) open their files on first read and keep them open.
Without a bound, the open files (13 per Sentinel-2 scene) and GDAL's per-file state grow with the
number of rasters a process has read, until memory or the open-file limit (often 1024) runs out.
Every reader reports each read here; beyond `MAX_OPEN` the least recently read one is closed, and
it reopens on its next read. Each DataLoader worker has its own copy (forked or rebuilt empty).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Protocol

MAX_OPEN = 16  # rasters kept open per process: ~200 files for Sentinel-2 scenes of 13 band files


class Closable(Protocol):
    def close(self) -> None: ...


class OpenRasters:
    """Least-recently-read order of the open readers; closes the oldest beyond `max_open`.

    Holds weak references: a reader that is garbage-collected leaves the bound (its files close
    with it), and keeping a reader here never keeps it, or its files, alive.
    """

    def __init__(self, max_open: int = MAX_OPEN):
        self.max_open = max_open
        self._lru: OrderedDict[int, weakref.ref] = OrderedDict()

    def used(self, reader: Closable) -> None:
        key = id(reader)
        ref = self._lru.get(key)
        if (
            ref is None or ref() is not reader
        ):  # new, or an id reused after its reader was collected
            self._lru[key] = weakref.ref(reader, lambda r, key=key: self._forget(key, r))
        self._lru.move_to_end(key)
        while len(self._lru) > self.max_open:
            _, ref = self._lru.popitem(last=False)
            oldest = ref()
            if oldest is not None:
                oldest.close()

    def _forget(self, key: int, ref: weakref.ref) -> None:
        if self._lru.get(key) is ref:
            del self._lru[key]

    def __len__(self) -> int:
        return len(self._lru)


OPEN = OpenRasters()
