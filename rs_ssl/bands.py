"""Band and sensor registry: names, wavelengths, resolutions, DN scaling and normalisation statistics.

The tables live in `data_manifests/bands.yaml` and `data_manifests/normalization/<sensor>.yaml`;
this module only turns them into typed objects and resolves `--bands` specifications.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np

from rs_ssl.errors import UsageError
from rs_ssl.manifests import load_yaml, manifest_path


@dataclass(frozen=True)
class Band:
    name: str
    wavelength_nm: float
    resolution_m: float | None
    common: str


@dataclass(frozen=True)
class Sensor:
    key: str
    title: str
    bands: tuple[Band, ...]
    rgb: tuple[str, ...]
    scale: float
    offset: float
    nodata: float | None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    def band(self, name: str) -> Band:
        for b in self.bands:
            if b.name == name:
                return b
        raise KeyError(name)


@dataclass(frozen=True)
class BandSelection:
    """An ordered choice of bands of one sensor: what a model is trained on."""

    sensor: Sensor
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def bands(self) -> tuple[Band, ...]:
        return tuple(self.sensor.band(n) for n in self.names)

    @property
    def wavelengths_nm(self) -> list[float]:
        return [b.wavelength_nm for b in self.bands]

    def rgb_indices(self) -> list[int] | None:
        """Indices of the sensor's red, green, blue bands in this selection, or None if any is missing."""
        if all(n in self.names for n in self.sensor.rgb):
            return [self.names.index(n) for n in self.sensor.rgb]
        return None

    def to_dict(self) -> dict:
        return {"sensor": self.sensor.key, "names": list(self.names)}


@cache
def sensors() -> dict[str, Sensor]:
    """All sensors of the registry, by key (`s2_l1c`, `s2_l2a`, `landsat_oli`, `rgb`)."""
    table = load_yaml("bands.yaml")["sensors"]
    out = {}
    for key, spec in table.items():
        out[key] = Sensor(
            key=key,
            title=spec["title"],
            bands=tuple(Band(**b) for b in spec["bands"]),
            rgb=tuple(spec["rgb"]),
            scale=float(spec["scale"]),
            offset=float(spec["offset"]),
            nodata=spec.get("nodata"),
        )
    return out


def get_sensor(key: str) -> Sensor:
    try:
        return sensors()[key]
    except KeyError:
        raise UsageError(f"unknown sensor {key!r}; known sensors: {', '.join(sensors())}") from None


_S2_SHORT = re.compile(r"^B0?(\d)$")


def canonical_band_name(name: str, sensor: Sensor | None = None) -> str:
    """Normalise spellings such as `b2`, `B2`, `B8a` to the registry's (`B02`, `B8A` for Sentinel-2;
    Landsat's `SR_B4` to `B4`)."""
    n = name.strip().upper()
    if n.startswith("SR_") and (sensor is None or n[3:] in sensor.names):
        return n[3:]  # Landsat Collection 2 Level-2 file names (`SR_B4`): OLI band B4
    if sensor is not None and sensor.key.startswith("s2_") or sensor is None:
        m = _S2_SHORT.match(n)
        if m and (sensor is None or f"B0{m.group(1)}" in sensor.names):
            return f"B0{m.group(1)}"
    return n


def resolve_bands(
    spec: str | int | list[str] | tuple[str, ...], sensor: str | None = None
) -> BandSelection:
    """Resolve `--bands`: a count (13, 12, 3) or a comma-separated list of names (`B02,B03,B04,B08`).

    A count picks the full band set of the sensor registered for it (13 -> Sentinel-2 L1C,
    12 -> Sentinel-2 L2A, 3 -> RGB) unless `sensor` names one with that many bands. A list keeps
    the given order; its sensor is `sensor` or the first registered sensor that has every name.
    """
    table = load_yaml("bands.yaml")
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        # `auto` means the data's own bands: resolved by rs_ssl.data.resolve_data_bands, which reads the data
        raise UsageError(
            "--bands auto: no data to read the bands from here; give a count (13, 12, 3) or band names"
        )
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        count = int(spec)
        if sensor is not None:
            sens = get_sensor(sensor)
            if len(sens.bands) != count:
                raise UsageError(
                    f"--bands {count}: sensor {sens.key} has {len(sens.bands)} bands "
                    f"({','.join(sens.names)}); give a band list to select some of them"
                )
            return BandSelection(sens, sens.names)
        counts = {int(k): v for k, v in table["band_counts"].items()}
        if count not in counts:
            raise UsageError(
                f"--bands {count}: no sensor is registered for {count} bands; use one of "
                f"{', '.join(str(c) for c in sorted(counts))} or a list of band names"
            )
        sens = get_sensor(counts[count])
        return BandSelection(sens, sens.names)

    names_in = [s for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    if not names_in:
        raise UsageError(
            "--bands is empty; give a count (13, 12, 3) or names such as B02,B03,B04,B08"
        )
    candidates = [get_sensor(sensor)] if sensor is not None else list(sensors().values())
    for sens in candidates:
        names = [canonical_band_name(n, sens) for n in names_in]
        if all(n in sens.names for n in names):
            dupes = {n for n in names if names.count(n) > 1}
            if dupes:
                raise UsageError(f"--bands lists {', '.join(sorted(dupes))} more than once")
            return BandSelection(sens, tuple(names))
    known = "; ".join(f"{s.key}: {','.join(s.names)}" for s in candidates)
    bad = [n for n in names_in if not any(canonical_band_name(n, s) in s.names for s in candidates)]
    what = (
        f"unknown band name(s) {', '.join(bad)}" if bad else "these bands are not all of one sensor"
    )
    raise UsageError(f"--bands {','.join(names_in)}: {what}. Valid bands are {known}")


@dataclass(frozen=True)
class BandStats:
    """Per-band mean and standard deviation in reflectance units, for normalisation."""

    mean: np.ndarray
    std: np.ndarray
    source: str


def load_stats(selection: BandSelection) -> BandStats:
    """Normalisation statistics of the selected bands from data_manifests/normalization/<sensor>.yaml."""
    path = manifest_path("normalization", f"{selection.sensor.key}.yaml")
    if not path.is_file():
        shipped = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise UsageError(
            f"no normalisation statistics for sensor {selection.sensor.key}: rs-ssl ships them for "
            f"{', '.join(shipped)}; compute them from your data with "
            f"`rs-ssl manifest DATA --stats --out DIR` and copy DIR/stats.yaml to {path}"
        )
    table = load_yaml("normalization", f"{selection.sensor.key}.yaml")
    per_band = table["bands"]
    missing = [n for n in selection.names if n not in per_band]
    if missing:
        raise UsageError(f"{path}: no statistics for band(s) {', '.join(missing)}")
    mean = np.array([per_band[n]["mean"] for n in selection.names], dtype=np.float32)
    std = np.array([per_band[n]["std"] for n in selection.names], dtype=np.float32)
    return BandStats(mean=mean, std=std, source=table.get("source", str(path)))
