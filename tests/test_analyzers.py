"""The analysis engine (core/analyzers, core/knn): unit tests on synthetic data, and the quality
goals on real planted-truth benchmarks (tools/planted_sets.py: Fashion-MNIST n=2000 and the Tux Paint
stamps), with EfficientNet-Lite0 vectors (bench/effnet.py) and bench/metrics.py scoring.

The thresholds here are the goals minus a small margin that holds at ~2,000 images; the full
numbers (n=5000) come from ``python bench/quality.py``.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from conftest import make_bench  # noqa: E402

from visual_curation.core import knn as vknn  # noqa: E402
from visual_curation.core.analyzers import REGISTRY  # noqa: E402
from visual_curation.core.analyzers.base import AnalysisInput  # noqa: E402

EXPECTED = {
    "clusters": tuple(f"vc_cluster_{l}" for l in range(1, 6)),
    "duplicates": ("vc_dup_group", "vc_duplicate"),
    "uniqueness": ("vc_uniqueness",),
    "mislabels": ("vc_mislabel", "vc_suggested_label"),
    "outliers": ("vc_outlier",),
    "anomaly": ("vc_anomaly",),
    "quality": ("vc_blur", "vc_dark", "vc_bright"),
}
CONFIDENCES = ("vc_uniqueness", "vc_mislabel", "vc_outlier", "vc_anomaly", "vc_blur", "vc_dark",
               "vc_bright")


# --------------------------------------------------------------------------- synthetic data
def blobs(n=300, d=32, k=6, spread=0.35, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d))
    y = rng.integers(0, k, n)
    x = centers[y] + spread * rng.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), [f"c{c}" for c in y]


def make_input(n=300, seed=0, **kw):
    v, labels = blobs(n, seed=seed)
    return AnalysisInput(ids=[f"id{i}" for i in range(n)], vectors=v, labels=labels, **kw)


def test_registry_names_and_fields():
    assert set(REGISTRY) == set(EXPECTED)
    for name, fields in EXPECTED.items():
        a = REGISTRY[name]
        assert a.name == name and tuple(a.fields) == fields
        assert isinstance(a.defaults, dict)
    assert REGISTRY["mislabels"].needs_labels and REGISTRY["outliers"].needs_labels
    assert REGISTRY["quality"].needs_pixels
    names = [k for a in REGISTRY.values() for k in a.defaults]
    assert len(names) == len(set(names)), "parameter names must be distinct across analyzers"


def test_no_fiftyone_import_in_engine():
    for f in [REPO / "core" / "knn.py", *sorted((REPO / "core" / "analyzers").glob("*.py"))]:
        src = f.read_text()
        assert "import fiftyone" not in src and "from fiftyone" not in src, f


@pytest.mark.parametrize("block,chunk", [(None, None), (7, 50), (64, 33)])
def test_knn_exact_blocked(block, chunk):
    v, _ = blobs(257, d=16, seed=3)
    v[10] = v[11]                                    # an exact tie
    ind, sim = vknn.knn(v, 9, block=block, chunk=chunk)
    full = v @ v.T
    np.fill_diagonal(full, -np.inf)
    ref = -np.sort(-full, axis=1)[:, :9]
    assert ind.shape == (257, 9) and sim.dtype == np.float32
    np.testing.assert_allclose(sim, ref, atol=1e-5)
    assert (ind != np.arange(257)[:, None]).all()          # self excluded
    assert (np.diff(sim, axis=1) <= 1e-6).all()            # sorted
    np.testing.assert_allclose(np.take_along_axis(full, ind, 1), sim, atol=1e-5)
    assert ind[10, 0] == 11 and ind[11, 0] == 10
    ind2, _ = vknn.knn(v, 9, block=block, chunk=chunk)
    assert (ind == ind2).all()


def test_ivf_graph_shape_self_excluded_and_recall():
    v, _ = blobs(3000, d=32, k=12, spread=0.5, seed=5)
    ind, sim, info = vknn.ivf_knn(v, 10, n_probe=6)
    # row ids as int32 below 2^31 rows (half the memory of the (N, k) results)
    assert info["method"] == "ivf" and ind.shape == (3000, 10) and ind.dtype == np.int32
    assert (ind != np.arange(3000)[:, None]).all()
    assert (np.diff(sim, axis=1) <= 1e-6).all()
    np.testing.assert_allclose(np.einsum("id,ikd->ik", v, v[ind]), sim, atol=1e-5)
    ex, _ = vknn.knn(v, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ind, ex)])
    assert recall >= 0.95, recall
    # the row pairs multiplied are counted per cell: probing every cell meets every row once
    assert vknn.ivf_knn(v[:500], 5, n_lists=8, n_probe=8)[2]["products"] == 500 * 500
    assert info["products"] < 3000 * 3000
    # knn_graph: exact below the threshold unless told, IVF when asked
    assert vknn.knn_graph(v[:50], 5)[2]["method"] == "exact"
    assert vknn.knn_graph(v, 5, method="ivf", n_probe=6)[2]["method"] == "ivf"
    with pytest.raises(ValueError):
        vknn.knn_graph(v, 5, method="hnsw")
    # fewer candidates than k: empty slots are -1 / -inf, never self
    tiny_i, tiny_s, _ = vknn.ivf_knn(v[:20], 10, n_lists=10, n_probe=1)
    assert ((tiny_i == -1) == ~np.isfinite(tiny_s)).all()
    assert (tiny_i != np.arange(20)[:, None]).all()


def test_ivf_graph_two_level_cells(monkeypatch):
    """Above FLAT_MAX cells (ten million rows at the default cell size) the cells are found
    through coarse cells; the graph keeps its contract and its recall."""
    from visual_curation.core import knn_cells

    v, _ = blobs(3000, d=32, k=12, spread=0.5, seed=7)
    # by default the cell count is sqrt(N) until cells would hold more than ROWS_PER_CELL rows
    # (a million rows), then N / ROWS_PER_CELL; above FLAT_MAX cells, two levels
    assert vknn.ivf_knn(v, 5, n_probe=2)[2]["n_lists"] == 55
    monkeypatch.setattr(vknn, "ROWS_PER_CELL", 10)
    info = vknn.ivf_knn(v, 5, n_probe=2)[2]
    assert 280 <= info["n_lists"] <= 320 and info["quantizer_levels"] == 1
    monkeypatch.setattr(vknn, "ROWS_PER_CELL", 1000)
    monkeypatch.setattr(knn_cells, "FLAT_MAX", 16)

    ind, sim, info = vknn.ivf_knn(v, 10, n_lists=64, n_probe=6)
    assert info["quantizer_levels"] == 2 and 48 <= info["n_lists"] <= 80
    assert (ind != np.arange(3000)[:, None]).all() and (ind >= 0).all()
    assert (np.diff(sim, axis=1) <= 1e-6).all()
    assert all(len(set(r)) == 10 for r in ind)                  # no row twice
    np.testing.assert_allclose(np.einsum("id,ikd->ik", v, v[ind]), sim, atol=1e-5)
    ex, _ = vknn.knn(v, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ind, ex)]) >= 0.95


def test_two_level_probes_are_the_nearest_children_of_the_nearest_coarse_cells():
    """Each row's probes: the nearest fine cells among the children of its nearest coarse
    cells, nearest first, ``-1`` where those children are fewer than the probes."""
    from visual_curation.core import knn_cells

    v, _ = blobs(2000, d=16, k=9, spread=0.6, seed=3)
    cells = knn_cells.Cells(*_two_level(v))
    for coarse_probe, n_probe in ((2, 5), (1, max(len(ch) for ch in cells.children))):
        got = knn_cells.nearest_cells(v, cells, n_probe, coarse_probe=coarse_probe)
        dc = ((v[:, None, :] - cells.coarse[None]) ** 2).sum(-1)
        df = ((v[:, None, :] - cells.centres[None]) ** 2).sum(-1)
        for i in range(len(v)):
            cand = np.concatenate([cells.children[c] for c in np.argsort(dc[i])[:coarse_probe]])
            want = cand[np.argsort(df[i, cand], kind="stable")][:n_probe]
            row = got[i]
            assert list(row[:len(want)]) == list(want) and (row[len(want):] == -1).all()


def _two_level(v):
    """Coarse centres and fine centres of unequal counts per coarse cell (1 to 9)."""
    rng = np.random.default_rng(0)
    coarse = v[rng.choice(len(v), 6, replace=False)]
    own = ((v[:, None, :] - coarse[None]) ** 2).sum(-1).argmin(axis=1)
    centres, children = [], []
    for c, f in enumerate((1, 9, 3, 5, 2, 7)):
        rows = v[own == c]
        cen = rows[rng.choice(len(rows), min(f, len(rows)), replace=False)]
        children.append(np.arange(sum(map(len, centres)), sum(map(len, centres)) + len(cen)))
        centres.append(cen)
    return np.concatenate(centres).astype(np.float32), coarse.astype(np.float32), children


def test_ivf_query_against_a_large_base(monkeypatch):
    """Queries against a large base (a class's members, for class support) are searched in the
    base's cells above knn.EXACT_MAX_PAIRS; same contract and >= 0.95 recall as the exact
    query, and the class support built on it stays within 0.01 of the exact one."""
    from visual_curation.core.analyzers import support

    v, labels = blobs(4000, d=32, k=8, spread=0.5, seed=9)
    q = np.arange(0, 4000, 13)
    ind, sim = vknn.ivf_query(v[q], v, 10, exclude=q, n_probe=8)
    ex_i, ex_s = vknn.knn_query(v[q], v, 10, exclude=q)
    assert ind.shape == (len(q), 10) and (ind != q[:, None]).all()
    assert (np.diff(sim, axis=1) <= 1e-6).all()
    np.testing.assert_allclose(np.einsum("id,ikd->ik", v[q], v[ind]), sim, atol=1e-5)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ind, ex_i)]) >= 0.95
    # fewer eligible rows than k: -1 / -inf slots, never the excluded row
    ti, ts = vknn.ivf_query(v[:3], v[:5], 5, exclude=np.arange(3), n_lists=2, n_probe=2)
    assert ((ti == -1) == ~np.isfinite(ts)).all() and (ti != np.arange(3)[:, None]).all()
    # knn_search: exact for a small base, cells when told the base is large
    si, _ = vknn.knn_search(v[q], v, 10, exclude=q)
    assert (si == ex_i).all()
    monkeypatch.setattr(vknn, "EXACT_MAX_ROWS", 0)
    monkeypatch.setattr(vknn, "EXACT_MAX_PAIRS", 0)
    si, ss = vknn.knn_search(v[q], v, 10, exclude=q)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(si, ex_i)]) >= 0.95

    # class support on the IVF graph, 6 % of labels flipped (their own class is rarely among
    # their neighbours: the members' cells are searched)
    rng = np.random.default_rng(3)
    names = sorted(set(labels))
    flip = rng.random(len(labels)) < 0.06
    noisy = [names[(names.index(l) + 1) % len(names)] if f else l for l, f in zip(labels, flip)]

    def own():
        inp = AnalysisInput(ids=[str(i) for i in range(4000)], vectors=v, labels=noisy,
                            knn_method="ivf")
        codes, cn = inp.label_array()
        return support.class_support(inp, codes, len(cn))["own"]

    approx = own()
    monkeypatch.setattr(vknn, "EXACT_MAX_PAIRS", 1 << 62)
    exact = own()
    assert np.isfinite(exact).all()
    np.testing.assert_allclose(approx, exact, atol=0.01)


def test_knn_small_and_cache():
    v, _ = blobs(3, d=4)
    ind, sim = vknn.knn(v, 10)
    assert ind.shape == (3, 2)
    inp = make_input(50)
    a = inp.knn(5)
    b = inp.knn(3)
    assert (b[0] == a[0][:, :3]).all()


def test_clusters_nested_ranges_and_summary():
    inp = make_input(400)
    res = REGISTRY["clusters"].run(inp)
    levels = [np.asarray(res.fields[f]) for f in EXPECTED["clusters"]]
    counts = [len(set(l.tolist())) for l in levels]
    assert counts == sorted(counts) and counts[0] >= 2
    for lab in levels:
        assert len(lab) == 400 and lab.min() == 0 and lab.max() == len(set(lab)) - 1
    for a, b in zip(levels[:-1], levels[1:]):           # each finer cluster in one coarser one
        for c in np.unique(b):
            assert len(np.unique(a[b == c])) == 1
    json.dumps(res.summary)
    lv = res.summary["levels"][1]
    sizes = [c["size"] for c in lv["clusters"]]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == 400
    for c in lv["clusters"]:
        assert 1 <= len(c["representatives"]) <= 6 and len(c["top_labels"]) <= 3
    # the 6 blobs are found at the level closest to 6 clusters
    from sklearn.metrics import normalized_mutual_info_score as nmi

    best = min(range(5), key=lambda l: abs(counts[l] - 6))
    assert nmi(inp.labels, levels[best]) > 0.8


def test_clusters_large_path_nested():
    inp = make_input(1500, seed=2)
    res = REGISTRY["clusters"].run(inp, cluster_max_direct=400)
    levels = [np.asarray(res.fields[f]) for f in EXPECTED["clusters"]]
    assert res.summary["method"].startswith("sample")
    for a, b in zip(levels[:-1], levels[1:]):
        for c in np.unique(b):
            assert len(np.unique(a[b == c])) == 1
    for lab in levels:                                  # every item has a cluster id
        assert lab.min() == 0 and lab.max() == len(set(lab.tolist())) - 1
    # the items outside the sample go down its tree: the 6 blobs are found as on the exact path
    from sklearn.metrics import normalized_mutual_info_score as nmi

    exact = REGISTRY["clusters"].run(inp).fields
    assert nmi(inp.labels, levels[0]) >= nmi(inp.labels, exact["vc_cluster_1"]) - 0.05


def test_clusters_sampled_items_reach_the_sample_the_same_way_in_any_block():
    """Items outside the sample are tied to it round by round, each round from the previous
    round's answers only; the rows are taken in blocks (memory), which changes nothing."""
    from visual_curation.core.analyzers.clusters import nearest_sampled

    inp = make_input(1500, seed=2)
    ind, _ = inp.knn(10)
    sample = np.sort(np.random.default_rng(3).choice(1500, 40, replace=False))
    whole = nearest_sampled(ind, sample, 1500, block=10**9)
    assert (nearest_sampled(ind, sample, 1500, block=7) == whole).all()
    ref = np.full(1500, -1)
    ref[sample] = np.arange(len(sample))
    for _ in range(30):                                 # the rule, one item at a time
        prev = ref.copy()
        for i in np.flatnonzero(prev < 0):
            got = [prev[j] for j in ind[i] if j >= 0 and prev[j] >= 0]
            ref[i] = got[0] if got else -1
        if (ref == prev).all():
            break
    assert (whole == ref).all() and (whole >= 0).mean() > 0.95


def test_mislabel_vote_blended_block_by_block_gives_the_same_values():
    """The vote is blended into the classifier's probabilities block by block (no second
    N x C array): the same values as the two arrays blended whole."""
    from visual_curation.core.analyzers.mislabels import (MislabelsAnalyzer, blend_weights,
                                                          label_confidence, vote)

    inp = make_input(700, seed=6)
    ind, sim = inp.knn(10)
    y = np.random.default_rng(4).integers(-1, 6, 700)
    P_lr = np.random.default_rng(5).dirichlet(np.ones(6), 700).astype(np.float32)
    p = MislabelsAnalyzer().params()
    a = p["mislabel_lr_weight"]
    P = a * P_lr + (1 - a) * vote(ind, sim, y, 6, 0.95)
    P2 = vote(ind, sim, y, 6, 0.95, block=64, into=P_lr.copy(), weights=blend_weights(p))
    assert np.array_equal(P, P2)
    assert np.array_equal(label_confidence(P, y, p), label_confidence(P2, y, p), equal_nan=True)


def _nested(levels):
    return all(len(np.unique(a[b == c])) == 1
               for a, b in zip(levels[:-1], levels[1:]) for c in np.unique(b))


def test_cluster_levels_are_even_steps_of_similarity_calibrated_on_the_dataset():
    from sklearn.metrics import adjusted_rand_score as ari

    inp = make_input(600, seed=3)
    res = REGISTRY["clusters"].run(inp)
    lv = res.summary["levels"]
    bg = res.summary["background"]
    # similarity: cosine of the vectors centred on the dataset's mean; the background is the
    # median similarity of random pairs
    u = np.asarray(inp.vectors, np.float64)
    u = u - u.mean(axis=0)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 600, 5000), rng.integers(0, 600, 5000)
    assert abs(bg - np.median((u[a] * u[b]).sum(1)[a != b])) < 0.03
    sims = [x["similarity"] for x in lv]
    assert np.allclose(np.diff(sims), sims[1] - sims[0], atol=1e-3) and sims[1] > sims[0]
    assert np.allclose(sims, [bg + x["z"] * (1 - bg) for x in lv], atol=1e-3)
    assert [x["name"] for x in lv][-1] == "near-identical"
    # the same items from a model whose vectors all share a strong common direction (raw
    # cosines all high): the same levels and the same clusters
    w = np.asarray(inp.vectors, np.float32) + 0.6 * np.float32(
        np.random.default_rng(0).normal(size=(1, u.shape[1])))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    raw = (w[a] * w[b]).sum(1)[a != b]
    assert np.median(raw) > np.median((inp.vectors[a] * inp.vectors[b]).sum(1)[a != b]) + 0.3
    res2 = REGISTRY["clusters"].run(AnalysisInput(ids=inp.ids, vectors=w, labels=inp.labels))
    assert abs(res2.summary["background"] - bg) < 0.05
    for l in range(1, 5):
        assert ari(res.fields[f"vc_cluster_{l}"], res2.fields[f"vc_cluster_{l}"]) > 0.8, l
    # the strictest level lies inside these tight blobs (most pairs sit near it): its
    # similarity is the same
    assert abs(lv[-1]["similarity"] - res2.summary["levels"][-1]["similarity"]) < 0.01


def test_strictest_level_groups_only_near_identical_items_and_every_duplicate_group():
    rng = np.random.default_rng(0)
    inp = make_input(500, seed=4)
    # blobs made loose: each item is its blob's direction plus as much of its own
    v = np.asarray(inp.vectors, np.float32) + rng.normal(size=inp.vectors.shape).astype(
        np.float32) * 0.35
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    src = rng.choice(500, 20, replace=False)
    copies = v[src] + 0.01 * rng.normal(size=(20, v.shape[1])).astype(np.float32)
    v = np.vstack([v, copies / np.linalg.norm(copies, axis=1, keepdims=True)])
    ids = [f"id{i}" for i in range(520)]
    inp = AnalysisInput(ids=ids, vectors=v, labels=list(inp.labels) + [None] * 20)
    # a "duplicate group" the vectors would never put together (the pixel check found it)
    far = int(np.argmin(v[:500] @ v[0]))
    inp.shared.dup_roots = np.arange(520)
    inp.shared.dup_roots[far] = 0
    for direct in (10000, 200):            # the exact tree, and a sampled tree of 200 items
        res = REGISTRY["clusters"].run(inp, cluster_max_direct=direct)
        levels = [np.asarray(res.fields[f"vc_cluster_{l}"]) for l in range(1, 6)]
        assert _nested(levels)
        strict = levels[-1]
        assert all(strict[s] == strict[500 + i] for i, s in enumerate(src))
        assert all(lab[far] == lab[0] for lab in levels)
        sizes = np.bincount(strict)
        assert (sizes[strict] == 1).mean() > 0.8           # most items are alone
        top = res.summary["levels"][-1]
        assert top["singletons"] == int((sizes == 1).sum())
        assert (strict >= top["first_single"]).sum() == top["singletons"]  # single items last


def test_clusters_of_a_random_half_match_the_whole_on_separated_groups():
    from sklearn.metrics import adjusted_rand_score as ari

    inp = make_input(1200, seed=5)
    full = REGISTRY["clusters"].run(inp).fields
    half = np.sort(np.random.default_rng(0).choice(1200, 600, replace=False))
    sub = AnalysisInput(ids=[inp.ids[i] for i in half], vectors=inp.vectors[half])
    part = REGISTRY["clusters"].run(sub).fields
    assert ari(np.asarray(full["vc_cluster_1"])[half], part["vc_cluster_1"]) >= 0.8


def test_determinism_and_ranges():
    for name in ("clusters", "uniqueness", "mislabels", "outliers", "duplicates"):
        r1 = REGISTRY[name].run(make_input(300, seed=5))
        r2 = REGISTRY[name].run(make_input(300, seed=5))
        assert r1.fields.keys() == r2.fields.keys(), name
        for f in r1.fields:     # lists, or arrays for numbers (NaN = no value)
            a, b = r1.fields[f], r2.fields[f]
            assert type(a) is type(b), f
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=f)
            else:
                assert a == b, f
        for f, vals in r1.fields.items():
            assert len(vals) == 300
            if f in CONFIDENCES:
                v = np.array([np.nan if x is None else x for x in vals], float)
                assert np.nanmin(v) >= 0 and np.nanmax(v) <= 1, f
        json.dumps(r1.summary)


def test_uniqueness_orders_copies_low():
    inp = make_input(200)
    v = inp.vectors.copy()
    v[1] = v[0]
    inp = AnalysisInput(ids=inp.ids, vectors=v)
    u = np.array(REGISTRY["uniqueness"].run(inp).fields["vc_uniqueness"])
    assert u[0] < 0.1 and u[1] < 0.1 and u.min() >= 0 and u.max() == 1


def test_unknown_parameter_and_missing_labels():
    inp = make_input(50)
    with pytest.raises(TypeError):
        REGISTRY["uniqueness"].run(inp, no_such_param=1)
    with pytest.raises(ValueError):
        REGISTRY["mislabels"].run(AnalysisInput(ids=inp.ids, vectors=inp.vectors))


def test_unlabelled_items_get_none():
    inp = make_input(120)
    labels = list(inp.labels)
    labels[3] = None
    inp = AnalysisInput(ids=inp.ids, vectors=inp.vectors, labels=labels)
    m = REGISTRY["mislabels"].run(inp).fields
    o = REGISTRY["outliers"].run(inp).fields
    # no value: NaN in an analysis' array (written as None, test_analyze_spreads_values)
    assert np.isnan(m["vc_mislabel"][3]) and np.isnan(o["vc_outlier"][3])
    assert not np.isnan(np.delete(np.asarray(m["vc_mislabel"]), 3)).any()
    assert m["vc_suggested_label"][3] is not None


def test_tiny_inputs_do_not_crash(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGB", (20, 20), (120, 30, 200)).save(p)
    for n in (1, 2):
        v, labels = blobs(n, d=8)
        inp = AnalysisInput(ids=[str(i) for i in range(n)], vectors=v, labels=labels,
                            filepaths=[str(p)] * n)
        for name, a in REGISTRY.items():
            res = a.run(inp)
            assert set(res.fields) == set(EXPECTED[name])
            assert all(len(x) == n for x in res.fields.values())


def _write_images(folder, n=6, size=64, seed=0):
    """Distinct smooth random pictures (upscaled 8x8 colour noise plus a square)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8))
        a = np.array(small.resize((size, size), Image.BICUBIC))
        a[size // 4: size // 2, size // 4: size // 2] = (255 - 40 * i) % 256
        p = folder / f"im{i}.png"
        Image.fromarray(a).save(p)
        paths.append(str(p))
    return paths


def test_broken_and_missing_files_are_errors_not_crashes(tmp_path):
    paths = _write_images(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    paths += [str(tmp_path / "broken.jpg"), str(tmp_path / "missing.png")]
    n = len(paths)
    v, labels = blobs(n, d=8)
    v[:] = v[0]                                      # all candidates for the duplicate check
    boxes = [None] * n
    boxes[1] = [0.25, 0.25, 0.5, 0.5]                # a patch
    inp = AnalysisInput(ids=[f"s{i}" for i in range(n)], vectors=v, labels=labels,
                        filepaths=paths, boxes=boxes)
    q = REGISTRY["quality"].run(inp)
    assert set(q.errors) == {n - 2, n - 1}
    for f in EXPECTED["quality"]:
        assert q.fields[f][n - 1] is None and q.fields[f][n - 2] is None
        assert all(0 <= x <= 1 for x in q.fields[f][:n - 2])
    d = REGISTRY["duplicates"].run(inp)
    assert {n - 2, n - 1} <= set(d.errors)
    # unreadable items are judged by the strict vector rule (here: identical vectors) and
    # their errors say so
    assert d.fields["vc_dup_group"][n - 1] is not None
    assert "vectors alone" in d.errors[n - 1] and "file not found" in d.errors[n - 1]
    assert d.summary["vector_only_items"] >= 2
    v2 = v.copy()
    v2[n - 1] = v2[n - 1] * 0.5 + np.roll(v2[n - 1], 1) * 0.5    # far below the strict rule
    v2 /= np.linalg.norm(v2, axis=1, keepdims=True)
    inp2 = AnalysisInput(ids=inp.ids, vectors=v2, labels=labels, filepaths=paths, boxes=boxes)
    d2 = REGISTRY["duplicates"].run(inp2, dup_min_sim=-1.0)
    assert d2.fields["vc_dup_group"][n - 1] is None


def test_duplicates_exact_hash_and_keep_rule(tmp_path):
    paths = _write_images(tmp_path, n=4)
    big = Image.open(paths[0]).resize((128, 128), Image.BICUBIC)
    big.save(tmp_path / "big.png")
    paths.append(str(tmp_path / "big.png"))        # same picture, larger: the one to keep
    paths.append(paths[2])                         # exact copy by content hash
    v, _ = blobs(len(paths), d=8)
    v[4] = v[0]
    hashes = [hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in paths]
    inp = AnalysisInput(ids=[f"s{i}" for i in range(len(paths))], vectors=v, filepaths=paths,
                        content_hashes=hashes, created=[float(i) for i in range(len(paths))])
    f = REGISTRY["duplicates"].run(inp).fields
    assert f["vc_dup_group"][0] == f["vc_dup_group"][4] == "s4"
    assert f["vc_duplicate"][0] and not f["vc_duplicate"][4]
    assert f["vc_dup_group"][2] == f["vc_dup_group"][5] == "s2"   # same size: oldest kept
    assert not f["vc_duplicate"][2] and f["vc_duplicate"][5]
    assert f["vc_dup_group"][1] is None and f["vc_duplicate"][1] is False


# --------------------------------------------------------------------------- benchmarks
def _bench_run(folder, knn_method="auto"):
    from bench import metrics
    from bench.effnet import embed_files

    truth = metrics.load_truth(folder)
    names = sorted(truth)
    paths = [str(Path(folder) / "data" / n) for n in names]
    inp = AnalysisInput(
        ids=names, vectors=embed_files(paths), labels=[truth[n]["label"] for n in names],
        filepaths=paths,
        content_hashes=[hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in paths],
        knn_method=knn_method, planned=tuple(REGISTRY))
    fields, summaries, errors = {}, {}, {}
    for name, a in REGISTRY.items():
        res = a.run(inp)
        fields.update(res.fields)
        summaries[name], errors[name] = res.summary, res.errors
    return dict(fields=fields, summaries=summaries, errors=errors, inp=inp,
                metrics=metrics.score_all(fields, names, truth), n=len(names))


@pytest.fixture(scope="session")
def fmnist_bench(tmp_root):
    return _bench_run(make_bench(tmp_root / "fm2000", "fmnist", n=2000, seed=0))


@pytest.fixture(scope="session")
def fmnist_bench_ivf(tmp_root):
    """The same set through the large-dataset path: IVF graph, class support from the graph."""
    return _bench_run(make_bench(tmp_root / "fm2000", "fmnist", n=2000, seed=0), knn_method="ivf")


@pytest.fixture(scope="session")
def stamps_bench(tmp_root):
    # ~580 clean stamps: 6 % defects (~12 of each kind) so that one item is not 25 % of a kind
    return _bench_run(make_bench(tmp_root / "stamps", "stamps", n=5000, seed=0, defects=0.06))


# goal minus margin at ~2,000 images (fmnist) / ~600 images (stamps)
GOALS = {
    "fmnist": dict(dup_f1=0.85, mislabel_precision=0.75, mislabel_recall=0.75,
                   outlier_auroc=0.95, blur_f1=0.9, dark_f1=0.9, bright_f1=0.9,
                   cluster_nmi=0.55, nesting=1.0),
    # outliers: 0.93 measured on this set (seed 0); foreign images that resemble each other
    # (Fashion-MNIST items among clip art) support each other's class - a known weakness
    "stamps": dict(dup_f1=0.85, mislabel_precision=0.55, mislabel_recall=0.55,
                   outlier_auroc=0.90, blur_f1=0.9, dark_f1=0.9, bright_f1=0.9,
                   cluster_nmi=0.6, nesting=1.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("which", ["fmnist", "stamps"])
def test_benchmark_goals(which, request):
    run = request.getfixturevalue(f"{which}_bench")
    m = run["metrics"]
    print(which, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in m.items()}))
    failed = {k: (round(m[k], 3), g) for k, g in GOALS[which].items() if not m[k] >= g}
    assert not failed, f"{which}: below goal {failed}"
    assert not any(run["errors"].values())


@pytest.mark.slow
def test_large_dataset_path_keeps_the_goals(fmnist_bench, fmnist_bench_ivf):
    """Above knn.EXACT_MAX_ROWS the analyzers run on the IVF graph; on real vectors its recall
    and the resulting quality must match the exact path's goals."""
    m = fmnist_bench_ivf["metrics"]
    failed = {k: (round(m[k], 3), g) for k, g in GOALS["fmnist"].items() if not m[k] >= g}
    assert not failed, f"IVF path below goal {failed}"
    exact = fmnist_bench["inp"].knn(10)[0]
    approx = fmnist_bench_ivf["inp"].knn(10)[0]
    assert fmnist_bench_ivf["inp"].knn_info()["method"] == "ivf"
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx)])
    assert recall >= 0.95, recall


@pytest.mark.slow
def test_benchmark_value_ranges(fmnist_bench):
    f, n = fmnist_bench["fields"], fmnist_bench["n"]
    for name in CONFIDENCES:
        v = np.array([np.nan if x is None else x for x in f[name]], float)
        assert len(v) == n and np.nanmin(v) >= 0 and np.nanmax(v) <= 1, name
    assert all(isinstance(x, bool) for x in f["vc_duplicate"])
    groups = [g for g in f["vc_dup_group"] if g is not None]
    # one kept item per group, the group id is the kept item's id
    kept = {g for g, d in zip(f["vc_dup_group"], f["vc_duplicate"]) if g is not None and not d}
    assert kept == set(groups)
    json.dumps(fmnist_bench["summaries"])


def test_duplicates_and_quality_share_one_decode(fmnist_small):
    """Planned together, duplicates measures quality's statistics on the images it decodes;
    the quality fields are the same as when quality reads the images itself."""
    paths = sorted(str(p) for p in (Path(fmnist_small) / "data").iterdir())
    rng = np.random.default_rng(0)
    v = rng.standard_normal((len(paths), 16)).astype(np.float32)
    v[1::2] = v[0::2][:len(v[1::2])] + 0.01          # pairs of candidates: most images decoded
    v /= np.linalg.norm(v, axis=1, keepdims=True)

    def run(planned):
        inp = AnalysisInput(ids=[str(i) for i in range(len(paths))], vectors=v,
                            filepaths=paths, planned=planned)
        REGISTRY["duplicates"].run(inp)
        shared = len(inp.shared.pixel_stats.get(512, {}))
        return REGISTRY["quality"].run(inp).fields, shared

    together, n_shared = run(("duplicates", "quality"))
    alone, n_alone = run(())
    assert n_shared >= len(paths) // 2 and n_alone == 0
    assert together == alone


def test_duplicates_without_pixels_use_vectors():
    inp = make_input(60)
    v = inp.vectors.copy()
    v[7] = v[3]
    hashes = [None] * 60
    hashes[10] = hashes[11] = "same-sha1"
    f = REGISTRY["duplicates"].run(
        AnalysisInput(ids=inp.ids, vectors=v, content_hashes=hashes)).fields
    assert f["vc_dup_group"][3] == f["vc_dup_group"][7] is not None
    assert f["vc_dup_group"][10] == f["vc_dup_group"][11] is not None
    assert sum(f["vc_duplicate"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("seed", [19, 20])
def test_mislabels_refit_without_the_flagged_labels_finds_them_better_on_clip_art(tmp_root,
                                                                                  seed):
    """Tux Paint stamps with planted wrong labels: fitted a second time without the labels the
    first fit flagged, the classifier's classes are no longer pulled towards the wrong labels,
    and the flags at 0.5 are better (F1) than from the first fit alone."""
    from bench import quality

    inp, names, truth = quality.load_input(make_bench(tmp_root / f"stamps-refit-{seed}",
                                                      "stamps", n=5000, seed=seed))
    inp.planned = tuple(REGISTRY)
    REGISTRY["duplicates"].run(inp)
    wrong = np.array([bool(truth[n].get("mislabeled")) for n in names])

    def f1(**params):
        res = REGISTRY["mislabels"].run(inp, **params)
        flag = np.nan_to_num(np.array(res.fields["vc_mislabel"], float)) >= 0.5
        p, r = wrong[flag].mean(), flag[wrong].mean()
        return 2 * p * r / (p + r), res.summary

    once, _ = f1(mislabel_refit=False)
    twice, summary = f1()
    assert summary["refit_left_out"] > 0
    assert twice > once, (once, twice)
