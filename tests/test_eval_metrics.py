"""Evaluation metrics against scikit-learn and hand-computed cases; linear head and k-NN on feature tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rs_ssl.eval import metrics as M
from rs_ssl.eval.knn import knn_scores
from rs_ssl.eval.linear import Split, scores, sweep_linear
from rs_ssl.eval.splits import fraction_indices, stratified_split

sk = pytest.importorskip("sklearn.metrics")


def _multilabel_case(seed: int = 0, n: int = 40, k: int = 6):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, k, generator=g) < 0.35).float()
    y[:, 2] = 0  # a class with no positives
    y[:5] = 0  # all-negative samples
    s = (0.6 * y + 0.7 * torch.rand(n, k, generator=g)).clamp(0, 1)
    s[:, 4] = torch.round(s[:, 4] * 4) / 4  # tied scores
    return y, s


def test_multilabel_f1_and_map_match_sklearn_with_empty_class_and_negative_samples():
    y, s = _multilabel_case()
    out = M.multilabel_metrics(y, s, [f"c{i}" for i in range(6)], threshold=0.5)
    yn, pn, sn = y.numpy().astype(int), (s >= 0.5).numpy().astype(int), s.numpy()
    assert out["f1_micro"] == pytest.approx(sk.f1_score(yn, pn, average="micro"))
    # defined classes: a positive target or prediction in the column
    keep = (yn.sum(0) + pn.sum(0)) > 0
    assert out["f1_macro"] == pytest.approx(sk.f1_score(yn[:, keep], pn[:, keep], average="macro"))
    per = sk.f1_score(yn, pn, average=None, zero_division=0)
    for j in range(6):
        got = out["per_class_f1"][f"c{j}"]
        assert (got is None) == (not keep[j])
        if got is not None:
            assert got == pytest.approx(per[j])
    pos = yn.sum(0) > 0
    assert out["per_class_ap"]["c2"] is None and out["classes_with_positives"] == int(pos.sum())
    assert out["map_macro"] == pytest.approx(
        sk.average_precision_score(yn[:, pos], sn[:, pos], average="macro")
    )
    assert out["map_micro"] == pytest.approx(sk.average_precision_score(yn, sn, average="micro"))
    for j in np.flatnonzero(pos):
        assert out["per_class_ap"][f"c{j}"] == pytest.approx(
            sk.average_precision_score(yn[:, j], sn[:, j])
        )


def test_multilabel_hand_computed_small_case():
    # 3 samples x 2 classes; class 1 has no positive and one false positive, sample 2 has no label.
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    s = torch.tensor([[0.9, 0.7], [0.3, 0.1], [0.6, 0.2]])
    out = M.multilabel_metrics(y, s, ["a", "b"], threshold=0.5)
    # pred: [[1,1],[0,0],[1,0]] -> class a: tp1 fp1 fn1 -> F1 0.5; class b: tp0 fp1 fn0 -> F1 0
    assert out["per_class_f1"] == {"a": 0.5, "b": 0.0}
    assert out["f1_macro"] == pytest.approx(0.25)
    assert out["f1_micro"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 1))  # tp1 fp2 fn1
    # AP of a: ranking 0.9(+) 0.6(-) 0.3(+): 0.5*1 + 0.5*(2/3)
    assert out["per_class_ap"]["a"] == pytest.approx(0.5 + 1 / 3)
    assert out["per_class_ap"]["b"] is None and out["map_macro"] == pytest.approx(0.5 + 1 / 3)


def test_all_negative_targets_give_defined_zero_metrics():
    y = torch.zeros(4, 3)
    s = torch.full((4, 3), 0.2)
    out = M.multilabel_metrics(y, s, ["a", "b", "c"], threshold=0.5)
    assert (
        out["f1_micro"] == 0.0
        and out["f1_macro"] == 0.0
        and out["map_macro"] == 0.0
        and out["map_micro"] == 0.0
    )
    assert all(v is None for v in out["per_class_f1"].values())


def test_threshold_is_chosen_on_validation_scores():
    y = torch.tensor([[1.0], [1.0], [0.0], [0.0]])
    s = torch.tensor([[0.3], [0.35], [0.1], [0.2]])
    t = M.choose_threshold(y, s)
    assert 0.2 < t <= 0.3
    assert M.f1_scores(y, s >= t)[0] == 1.0


def test_single_label_metrics_match_sklearn():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 5, (60,), generator=g)
    p = torch.where(torch.rand(60, generator=g) < 0.6, y, torch.randint(0, 6, (60,), generator=g))
    y[y == 3] = 0  # class 3 never true; class 5 only predicted
    classes = [f"k{i}" for i in range(6)]
    out = M.single_label_metrics(y, p, classes)
    yn, pn = y.numpy(), p.numpy()
    assert out["accuracy"] == pytest.approx(sk.accuracy_score(yn, pn))
    for name in ("precision", "recall", "f1"):
        fn = getattr(sk, f"{name}_score")
        assert out[name] == pytest.approx(fn(yn, pn, average="macro", zero_division=0)), name
    assert out["confusion_matrix"] == sk.confusion_matrix(yn, pn, labels=range(6)).tolist()
    assert out["per_class_f1"]["k4"] == pytest.approx(
        sk.f1_score(yn, pn, labels=[4], average=None)[0]
    )


def test_linear_probe_learns_separable_features_and_selects_on_validation():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 16, generator=g) * 3
    y = torch.arange(90) % 3
    x = centers[y] + torch.randn(90, 16, generator=g)
    tr, va, te = Split(x[:60], y[:60]), Split(x[60:75], y[60:75]), Split(x[75:], y[75:])
    head, sweep = sweep_linear(tr, va, 3, False, epochs=30)
    assert len(sweep["grid"]) == 9
    best = max(r["val_score"] for r in sweep["grid"])
    chosen = next(
        r
        for r in sweep["grid"]
        if (r["lr"], r["weight_decay"]) == (sweep["chosen"]["lr"], sweep["chosen"]["weight_decay"])
    )
    assert chosen["val_score"] == best
    with torch.no_grad():
        acc = float((scores(head(te.x), False).argmax(1) == te.y).float().mean())
    assert acc > 0.9


def test_knn_matches_sklearn():
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, 8, generator=g)
    y = torch.randint(0, 4, (50,), generator=g)
    q = torch.randn(20, 8, generator=g)
    ours = knn_scores(x, y, q, 5, 4, False).argmax(1)
    ref = (
        KNeighborsClassifier(5, metric="cosine", algorithm="brute")
        .fit(x.numpy(), y.numpy())
        .predict(q.numpy())
    )
    assert ours.tolist() == ref.tolist()
    ym = (torch.rand(50, 3, generator=g) < 0.4).float()
    s = knn_scores(x, ym, q, 5, 3, True)
    from sklearn.neighbors import NearestNeighbors

    idx = (
        NearestNeighbors(n_neighbors=5, metric="cosine", algorithm="brute")
        .fit(x.numpy())
        .kneighbors(q.numpy())[1]
    )
    assert torch.allclose(s, ym[torch.as_tensor(idx)].mean(1))


def test_stratified_split_and_fractions_are_seeded_and_cover_every_class():
    y = torch.tensor([0] * 10 + [1] * 5 + [2] * 2)
    a, b = stratified_split(y, False, seed=3), stratified_split(y, False, seed=3)
    assert a == b and stratified_split(y, False, seed=4) != a
    assert sorted(a["train"] + a["validation"] + a["test"]) == list(range(17))
    for part in ("train", "test"):
        assert set(y[a[part]].tolist()) == {0, 1, 2}
    f = fraction_indices(y, False, 0.1, seed=0)
    assert sorted(y[f].tolist()) == [0, 1, 2]  # round(0.1 n) but at least one per class
    assert fraction_indices(y, False, 1.0, seed=0) == list(range(17))
