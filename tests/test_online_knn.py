"""Online k-NN monitor: leave-one-out scoring by hand, and an end-to-end pretrain on labelled data."""

import json

import torch

from rs_ssl import cli
from rs_ssl.eval.knn import knn_metric, knn_scores


def loo_knn_scores(x, y, k, num_classes, multilabel):
    return knn_scores(x, y, None, k, num_classes, multilabel)


def test_leave_one_out_never_counts_the_sample_itself():
    # two tight clusters; with k=1 every point's nearest *other* point is its cluster mate
    x = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    y = torch.tensor([0, 0, 1, 1])
    s = loo_knn_scores(x, y, k=1, num_classes=2, multilabel=False)
    assert knn_metric(s, y, False) == 1.0
    # labels crossed between clusters: leave-one-out must then be always wrong (self-match would hide it)
    y2 = torch.tensor([0, 1, 0, 1])
    assert knn_metric(loo_knn_scores(x, y2, k=1, num_classes=2, multilabel=False), y2, False) == 0.0


def test_online_leave_one_out_equals_probe_scoring_without_the_sample():
    """The monitor and `rs-ssl probe --knn` score alike: leave-one-out over a bank is the probe's
    scoring of each sample against the bank without it (single- and multi-label)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 6, generator=g)
    y = torch.randint(0, 3, (30,), generator=g)
    ym = (torch.rand(30, 4, generator=g) < 0.5).float()
    for labels, k, ml in ((y, 3, False), (ym, 4, True)):
        loo = knn_scores(x, labels, None, 5, k, ml)
        for i in range(len(x)):
            rest = torch.cat([torch.arange(i), torch.arange(i + 1, len(x))])
            ref = knn_scores(x[rest], labels[rest], x[i : i + 1], 5, k, ml)
            assert torch.equal(loo[i : i + 1], ref)


def test_multilabel_votes_and_micro_f1():
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    s = loo_knn_scores(x, y, k=1, num_classes=2, multilabel=True)
    assert torch.equal(s, torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]]))
    # tp=3 (row0 c0, row1 c0, row2 c1), fp=2, fn=1 -> 2*3/(6+2+1)
    assert abs(knn_metric(s, y, True) - 6 / 9) < 1e-9


def test_pretrain_on_labelled_folder_reports_online_knn(tmp_path, shared_data):
    out = tmp_path / "run"
    rc = cli.main(
        [
            "pretrain",
            "--data",
            str(shared_data / "rgb_aerial" / "ucmerced"),
            "--bands",
            "3",
            "--size",
            "32",
            "--batch-size",
            "2",
            "--epochs",
            "2",
            "--workers",
            "0",
            "--knn-k",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    hist = m["online_knn"]
    assert [h["epoch"] for h in hist] == [0, 1]
    assert all(0.0 <= h["knn_accuracy"] <= 1.0 for h in hist)


def test_knn_data_must_be_labelled(tmp_path, s2_scene):
    rc = cli.main(
        [
            "pretrain",
            "--knn-data",
            str(s2_scene),
            "--max-steps",
            "1",
            "--workers",
            "0",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 2


def test_online_knn_on_data_with_splits_embeds_only_the_training_split(tmp_path, shared_data):
    """train/ and test/ class folders: pretraining (`--split auto`) and its monitor read train/ only."""
    src = shared_data / "rgb_aerial" / "ucmerced" / "UCMerced_LandUse" / "Images"
    tree = tmp_path / "tree"
    for cls in ("airplane", "forest"):
        files = sorted((src / cls).iterdir())
        for split, f in (("train", files[0]), ("test", files[1])):
            (tree / split / cls).mkdir(parents=True)
            (tree / split / cls / f.name).symlink_to(f)
    out = tmp_path / "run"
    argv = ["pretrain", "--data", str(tree), "--bands", "3", "--size", "32", "--batch-size", "2"]
    argv += ["--epochs", "1", "--workers", "0", "--knn-k", "1", "--out", str(out)]
    assert cli.main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["split"] == "train" and m["data"]["samples"] == 2
    assert m["data"]["dataset_samples"] == 4 and len(m["online_knn"]) == 1
    # config.yaml's run facts (comment lines below the options): not the 4 of train/ and test/
    assert "# online_knn_samples: 2\n" in (out / "config.yaml").read_text()
