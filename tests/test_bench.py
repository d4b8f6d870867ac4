"""`rs-ssl bench` runs all variants on identical real inputs and prints one JSON line."""

import json

from rs_ssl import cli


def test_bench_cpu_with_torchgeo_and_handwritten(tmp_path, capsys):
    rc = cli.main(
        [
            "bench",
            "--method",
            "simclr",
            "--backbone",
            "resnet18",
            "--size",
            "32",
            "--batch-size",
            "4",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--compare",
            "torchgeo",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    r = json.loads(line)
    for key in (
        "img_per_s",
        "torchgeo_img_per_s",
        "ratio",
        "handwritten_img_per_s",
        "ratio_vs_handwritten",
    ):
        assert r[key] > 0, key
    assert abs(r["ratio"] - r["img_per_s"] / r["torchgeo_img_per_s"]) < 0.05 * r["ratio"]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["img_per_s"] == r["img_per_s"] and (tmp_path / "config.yaml").is_file()


def test_bench_streams_from_files(tmp_path, capsys, s2_scene):
    rc = cli.main(
        [
            "bench",
            "--method",
            "mocov2",
            "--size",
            "32",
            "--batch-size",
            "4",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--no-handwritten",
            "--data",
            str(s2_scene),
            "--workers",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["streamed_img_per_s"] > 0 and r["workers"] == 1 and "torchgeo_img_per_s" not in r


def test_bench_rejects_missing_cuda_or_unknown_torchgeo_task(tmp_path):
    import torch

    if not torch.cuda.is_available():
        assert cli.main(["bench", "--device", "cuda", "--out", str(tmp_path / "a")]) == 2
    assert (
        cli.main(
            [
                "bench",
                "--method",
                "rpl",
                "--compare",
                "torchgeo",
                "--steps",
                "1",
                "--warmup",
                "1",
                "--size",
                "32",
                "--batch-size",
                "2",
                "--no-handwritten",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
