"""Dataset roots as TorchGeo users have them (../shared/data/torchgeo_fixtures), official splits,
split folders and lists, symlinked trees, and the bad inputs of issue 13."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rs_ssl.cli import main
from rs_ssl.data import detect_format, labelled_dataset, pretrain_dataset, resolve_data_bands, scan
from rs_ssl.errors import DataError, UsageError

LISTED = {  # roots whose splits come from split lists: the lists' file names
    "bigearthnet/v1": "bigearthnet-{}.csv",
    "eurosat": "eurosat-{}.txt",
    "ucmerced": "uc_merced-{}.txt",
    "resisc45": "resisc45-{}.txt",
}
LABELLED = ("bigearthnet/v1", "bigearthnet/v2", "eurosat", "ucmerced", "resisc45", "millionaid")


@pytest.fixture(scope="module")
def fixtures(shared_data: Path) -> Path:
    return shared_data / "torchgeo_fixtures"


@pytest.fixture(scope="module")
def expected(fixtures: Path) -> dict:
    return json.loads((fixtures / "expected.json").read_text())


def _splits(want: dict) -> dict:
    """expected.json spells the validation split `val`, rs-ssl `validation`."""
    return {{"val": "validation"}.get(k, k): v for k, v in want.items()}


def _unique_listed(root: Path, pattern: str) -> int:
    """Samples named by the root's split lists, each counted once (read here, independently of rs-ssl)."""
    names = set()
    for s in ("train", "val", "test"):
        names |= {
            ln.split(",")[0].strip()
            for ln in (root / pattern.format(s)).read_text().splitlines()
            if ln.strip()
        }
    return len(names)


def _manifest(root: Path, out: Path, *extra: str) -> dict:
    assert main(["manifest", str(root), "--out", str(out), *extra]) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("name", LABELLED)
def test_manifest_of_a_torchgeo_root_gives_its_samples_and_official_splits(
    fixtures, expected, name, tmp_path
):
    want = expected[name]
    summary = _manifest(fixtures / name, tmp_path / "m")
    assert summary["splits"] == _splits(want["splits"])
    if name in LISTED:
        assert summary["count"] == _unique_listed(fixtures / name, LISTED[name])
        assert summary["split_source"].startswith("split lists " + LISTED[name].split("{")[0])
    else:  # v2: one metadata row per sample; MillionAID: train/ and test/ hold different files
        assert summary["count"] == sum(want["splits"].values())
    assert len(summary["bands"]) == want["channels"]
    classes = want.get("classes") or want.get("leaf_classes")
    if isinstance(classes, list):
        assert sorted(summary["labels"]) == classes
    else:
        assert (
            set(summary["labels"]) <= set(scan(fixtures / name).classes)
            and len(scan(fixtures / name).classes) == classes
        )


@pytest.mark.parametrize(
    ("bands", "modality", "channels"), [("auto", "s2c", 13), ("12", "s2a", 12)]
)
def test_ssl4eo_root_without_metadata_json_reads_each_modality(
    fixtures, expected, bands, modality, channels, tmp_path
):
    want = expected["ssl4eo/s12"]
    summary = _manifest(fixtures / "ssl4eo" / "s12", tmp_path / "m", "--bands", bands)
    assert want["subsets"][modality]["channels"] == channels == len(summary["bands"])
    assert (
        summary["count"]
        == want["subsets"][modality]["locations_on_disk"] * want["dates_per_location"]
    )
    cat = scan(fixtures / "ssl4eo" / "s12", sensor="s2_l2a" if bands == "12" else None)
    assert cat.notes["modality"] == modality and len({r.group for r in cat.records}) == 2


@pytest.mark.parametrize("name", LABELLED)
def test_probe_on_a_torchgeo_root_uses_its_official_split(fixtures, expected, name, tmp_path):
    out = tmp_path / "probe"
    assert (
        main(
            [
                "probe",
                "--random-init",
                "--data",
                str(fixtures / name),
                "--size",
                "32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    s = json.loads((out / "metrics.json").read_text())["splits"]
    assert s["official"] is True and "seeded stratified 60/20/20" not in s["split_source"]
    want = _splits(expected[name]["splits"])
    if "validation" in want:
        assert s["sizes"] == want and s["validation_source"] == "validation split of the dataset"
    else:  # MillionAID: train and test only; validation is carved out of train, never train itself
        assert s["sizes"]["test"] == want["test"] and s["validation_source"].startswith(
            "carved out of train"
        )
        assert s["sizes"]["train"] + s["sizes"]["validation"] == want["train"]


def test_inner_folders_are_recognised_too(fixtures):
    assert detect_format(fixtures / "eurosat" / "ds") == "folder"
    assert detect_format(fixtures / "ucmerced" / "UCMerced_LandUse" / "Images") == "folder"
    assert detect_format(fixtures / "bigearthnet" / "v1" / "BigEarthNet-v1.0") == "bigearthnet"
    # BigEarthNet v1's split lists sit in the folder above BigEarthNet-v1.0/
    cat = scan(fixtures / "bigearthnet" / "v1" / "BigEarthNet-v1.0")
    assert cat.split_counts() == {"train": 2, "validation": 1, "test": 1}


def test_named_format_that_finds_nothing_says_what_it_looked_for(fixtures):
    with pytest.raises(DataError, match="looked for MillionAID"):
        scan(fixtures / "eurosat", "millionaid")


# --- fixtures built here: every band carries distinct values -------------------------------------


def _png(path: Path, seed: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = np.stack([rng.integers(b * 80, b * 80 + 60, (16, 16)) for b in range(3)], -1).astype(
        np.uint8
    )
    Image.fromarray(arr).save(path)


def _image_folder(
    root: Path, splits=("train", "val", "test"), classes=("farm", "forest"), n=2
) -> Path:
    k = 0
    for s in splits:
        for c in classes:
            for i in range(n):
                _png(root / s / c / f"{c}_{s}_{i}.png", k)
                k += 1
    return root


def test_imagefolder_split_folders_at_the_root_keep_their_split(tmp_path):
    root = _image_folder(tmp_path / "imagenette")
    (root / "README.md").write_text("not data")
    (root / "imagenette.tgz").write_bytes(b"\x1f\x8b")
    assert detect_format(root) == "folder"
    cat = scan(root)
    assert cat.split_counts() == {"train": 4, "validation": 4, "test": 4}
    assert {r.labels[0] for r in cat.records} == {"farm", "forest"}
    ds, info = labelled_dataset(
        root, "auto", resolve_data_bands("auto", None, root), split="val", patch=16
    )
    assert len(ds) == 4 and info["split_source"].startswith("split folders")
    assert all("/val/" in r.path for r in ds.records)


def test_probe_on_train_and_val_folders_tests_on_val_and_carves_validation_from_train(tmp_path):
    root = _image_folder(tmp_path / "imagenette", splits=("train", "val"), n=3)
    assert (
        main(
            [
                "probe",
                "--random-init",
                "--data",
                str(root),
                "--size",
                "16",
                "--out",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    s = json.loads((tmp_path / "p" / "metrics.json").read_text())["splits"]
    assert s["official"] and s["test_source"].startswith("the dataset's validation split")
    assert s["sizes"] == {
        "train": 4,
        "validation": 2,
        "test": 6,
    }  # one of three per class held out of train


def test_pretrain_prints_the_split_it_uses(fixtures, tmp_path, capsys):
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(fixtures / "millionaid"),
                "--size",
                "16",
                "--batch-size",
                "2",
                "--max-steps",
                "1",
                "--epochs",
                "1",
                "--workers",
                "0",
                "--knn-k",
                "0",
                "--out",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "split train: 2 of 4 samples (--split auto: the data defines splits train 2, test 2" in out
    )
    assert "3 bands (R,G,B, rgb)" in out


def test_train_only_millionaid_copy_is_recognised_and_pretrains_on_a_subset(fixtures, tmp_path):
    copy = tmp_path / "millionaid_train_only"
    copy.mkdir()
    (copy / "train").symlink_to(fixtures / "millionaid" / "train", target_is_directory=True)
    assert detect_format(copy) == "millionaid"
    assert scan(copy, "millionaid").split_counts() == {"train": 2}
    sel = resolve_data_bands("auto", None, copy)
    assert sel.sensor.key == "rgb" and len(sel) == 3
    ds, info = pretrain_dataset(copy, "auto", sel, patch=16, samples_per_epoch=1, subset=1)
    assert info["split"] == "train" and info["samples"] == len(ds) == 1


def test_symlinked_class_folders_are_followed(fixtures, tmp_path):
    src = fixtures / "resisc45" / "NWPU-RESISC45"
    root = tmp_path / "linked"
    root.mkdir()
    for c in sorted(src.iterdir()):
        (root / c.name).symlink_to(c, target_is_directory=True)
    cat = scan(root)
    assert (
        cat.format == "folder"
        and len(cat.records) == 9
        and len({r.labels for r in cat.records}) == 3
    )


def test_generic_nested_image_tree_is_an_unlabelled_source(tmp_path):
    for i, sub in enumerate(
        ("a/b", "a/b", "a/c/d", "e")
    ):  # images at several depths: not class folders
        _png(tmp_path / "tree" / sub / f"x{i}.png", i)
    assert detect_format(tmp_path / "tree") == "images"
    sel = resolve_data_bands("auto", None, tmp_path / "tree")
    ds, info = pretrain_dataset(tmp_path / "tree", "auto", sel, patch=16, samples_per_epoch=1)
    assert info["samples"] == 4 and info["split"] == "all" and ds[0]["image"].shape == (3, 16, 16)


def test_pretrain_split_defaults_to_train_and_all_takes_everything(shared_data):
    ben = shared_data / "bigearthnet_v2"
    sel = resolve_data_bands("auto", None, ben)
    _, auto = pretrain_dataset(ben, "auto", sel, patch=120, samples_per_epoch=1)
    _, every = pretrain_dataset(ben, "auto", sel, patch=120, samples_per_epoch=1, split="all")
    _, test = pretrain_dataset(ben, "auto", sel, patch=120, samples_per_epoch=1, split="test")
    sub, info = pretrain_dataset(ben, "auto", sel, patch=120, samples_per_epoch=1, subset=3)
    assert (auto["split"], auto["samples"], every["samples"], test["samples"]) == (
        "train",
        7,
        21,
        7,
    )
    assert info["samples"] == 3 and all(r.splits == ("train",) for r in sub.records)
    with pytest.raises(UsageError, match="defines no split"):
        pretrain_dataset(
            shared_data / "eurosat_ms",
            "auto",
            resolve_data_bands("auto", None, shared_data / "eurosat_ms"),
            patch=64,
            samples_per_epoch=1,
            split="train",
        )


def test_bands_auto_reads_the_datas_own_bands(shared_data):
    from rs_ssl.data import sample_path

    cases = {
        sample_path(): ("s2_l1c", 13),
        shared_data / "rgb_aerial" / "ucmerced": ("rgb", 3),
        shared_data / "bigearthnet_v2": ("s2_l2a", 12),
        shared_data / "eurosat_ms": ("s2_l1c", 13),
        shared_data / "s2_tile_folder": ("s2_l2a", 12),
    }
    for data, (sensor, n) in cases.items():
        sel = resolve_data_bands("auto", None, data)
        assert (sel.sensor.key, len(sel)) == (sensor, n), data
    # L2A data never gets a zero-filled B10 (with L1C statistics) by default
    assert "B10" not in resolve_data_bands("auto", None, shared_data / "bigearthnet_v2").names
    assert resolve_data_bands("12", None, None).sensor.key == "s2_l2a"  # counts still work
    assert resolve_data_bands("B02,B03", None, None).names == ("B02", "B03")  # and lists


def test_rgb_folder_pretrains_and_probes_without_bands(shared_data, tmp_path):
    rgb = shared_data / "rgb_aerial" / "ucmerced"
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(rgb),
                "--size",
                "32",
                "--batch-size",
                "2",
                "--max-steps",
                "1",
                "--epochs",
                "1",
                "--workers",
                "0",
                "--knn-k",
                "0",
                "--out",
                str(tmp_path / "pre"),
            ]
        )
        == 0
    )
    cfg = json.loads((tmp_path / "pre" / "metrics.json").read_text())
    assert cfg["data"]["samples"] == 4
    assert (
        main(
            [
                "probe",
                "--random-init",
                "--data",
                str(rgb),
                "--size",
                "32",
                "--out",
                str(tmp_path / "pr"),
            ]
        )
        == 0
    )
    m = json.loads((tmp_path / "pr" / "metrics.json").read_text())
    assert m["backbone"]["bands"] == ["R", "G", "B"]
    assert m["splits"]["validation_source"].startswith("carved out of train")


def test_jpeg_pixels_equal_pil(shared_data, fixtures):
    from PIL import Image

    from rs_ssl.data.readers import StackedRaster

    files = (
        sorted((shared_data / "aid_scenes").glob("*/*.jpg"))[:5]
        + sorted(fixtures.glob("resisc45/*/*/*.jpg"))[:2]
    )
    sel = resolve_data_bands("3", None, None)
    for f in files:
        got = StackedRaster(f, sel).read()
        want = np.asarray(Image.open(f).convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(got, want.astype(np.float32), err_msg=str(f))


# --- bad input: an error naming the file and what to do, or skipped and counted ---------------


def _listed_folder(tmp_path: Path, lines: dict[str, list[str]]) -> Path:
    _image_folder(tmp_path / "root" / "Images", splits=("",))
    for split, names in lines.items():
        (tmp_path / "root" / f"mydata-{split}.txt").write_text("\n".join(names) + "\n")
    return tmp_path / "root"


def test_split_list_naming_missing_files_reports_how_many_and_the_first(tmp_path):
    root = _listed_folder(
        tmp_path, {"train": ["farm__0.png", "gone1.png", "gone2.png"], "test": ["forest__1.png"]}
    )
    with pytest.raises(
        DataError,
        match=r"mydata-train.txt: 2 of 3 listed sample\(s\) not found .*gone1.png, gone2.png",
    ):
        scan(root)
    cat = scan(root, skip_bad=True)
    assert cat.split_counts() == {"train": 1, "test": 1} and len(cat.notes["split_problems"]) == 1
    summary = _manifest(root, tmp_path / "m", "--skip-bad")
    assert summary["skipped"] == 1 and "gone1.png" in summary["problems"][0]


def test_split_list_naming_a_sample_twice_is_an_error(tmp_path):
    root = _listed_folder(
        tmp_path, {"train": ["farm__0.png", "farm__0.png"], "test": ["forest__1.png"]}
    )
    with pytest.raises(
        DataError, match=r"mydata-train.txt: line 2 names farm__0.png again \(first at line 1\)"
    ):
        scan(root)
    assert scan(root, skip_bad=True).split_counts() == {"train": 1, "test": 1}


def test_split_folders_and_lists_that_disagree_are_an_error(tmp_path):
    root = _image_folder(tmp_path / "both")
    (root / "train.txt").write_text("farm_test_0.png\n")
    with pytest.raises(
        DataError, match="farm_test_0.png: in split folder test but .*train.txt puts it in train"
    ):
        scan(root)


def test_root_holding_only_archives_says_extract_them(tmp_path):
    root = tmp_path / "eurosat"
    root.mkdir()
    (root / "EuroSATallBands.zip").write_bytes(b"PK\x03\x04")
    (root / "eurosat-train.txt").write_text("a.tif\n")
    (root / "eurosat.md5").write_text("0" * 32)
    with pytest.raises(
        DataError, match=r"holds only archives \(EuroSATallBands.zip\); extract them"
    ):
        scan(root)


def test_corrupt_jpeg_in_a_class_folder_names_the_file_or_is_skipped(shared_data, tmp_path):
    root = tmp_path / "scenes"
    for c in ("Airport", "Beach"):
        (root / c).mkdir(parents=True)
        for f in sorted((shared_data / "aid_scenes" / c).glob("*.jpg"))[:2]:
            shutil.copy(f, root / c / f.name)
    bad = sorted((root / "Beach").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:300])  # truncated mid-header
    assert main(["manifest", str(root), "--out", str(tmp_path / "m")]) == 1
    summary = _manifest(root, tmp_path / "m2", "--skip-bad")
    assert summary["count"] == 3 and summary["skipped"] == 1 and bad.name in summary["problems"][0]


def test_symlink_loop_is_an_error_naming_the_link(tmp_path):
    _image_folder(tmp_path / "loop", splits=("",))
    (tmp_path / "loop" / "farm" / "again").symlink_to(tmp_path / "loop", target_is_directory=True)
    (tmp_path / "loop" / "extra").mkdir()
    _png(tmp_path / "loop" / "extra" / "deep" / "x.png", 0)  # nested: read as a generic image tree
    with pytest.raises(DataError, match=r"farm/again: symbolic link loop"):
        scan(tmp_path / "loop")


def test_empty_split_folder_is_an_error_or_skipped(tmp_path):
    root = _image_folder(tmp_path / "splits", splits=("train", "test"))
    (root / "val").mkdir()
    with pytest.raises(DataError, match=r"val: empty split folder"):
        scan(root)
    assert scan(root, skip_bad=True).split_counts() == {"train": 4, "test": 4}
