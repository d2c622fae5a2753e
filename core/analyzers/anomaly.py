"""Anomalies: items that look like nothing else in the dataset - no label field needed (unlike
``outliers``, which judges an item against its own class).

Three dataset-relative views of "unlike the rest", each a log distance turned into a robust
z-score (median and MAD of this dataset, so no constant depends on the embedding model):

* isolation: mean cosine distance to the ``anomaly_k`` nearest items (the shared kNN graph);
* off-centre: cosine distance to the dataset's mean direction;
* off-spread: whitened (Mahalanobis) distance from the mean in the ``anomaly_dims`` principal
  directions of the dataset, so that an item far along a direction in which the dataset hardly
  varies counts more than one far along its main axes.

A small group of foreign items that resemble each other is not isolated (they are each other's
neighbours) but stays off-centre and off-spread. The score is the mean of the three z-scores,
itself robustly standardised; confidence = logistic((z - anomaly_z) / anomaly_softness), 0.5
at ``anomaly_z`` robust SDs above the dataset's typical item.

The mean direction and the principal directions are fitted on at most ``FIT_MAX`` items, picked
by id. The run keeps them (float32) with its references, so an incremental run places new items
on exactly the earlier calibration without fitting it again (a run that kept no geometry is
refitted on the same earlier items).
"""
from __future__ import annotations

import numpy as np

from .base import (AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IncrementalInput,
                   IssueSpec, decode_array, encode_array, jsonable, logistic, report)

FIT_MAX = 20000
MIN_ITEMS = 8
BLOCK = 65536
COMPONENTS = ("isolation", "off_centre", "off_spread")


def fit_rows(ids, rows=None, limit=FIT_MAX):
    """The rows the calibration is fitted on: all of ``rows`` (default: every row), or
    ``limit`` of them drawn with a fixed seed from their ids in sorted order (so the same items
    give the same rows, in whatever order they come)."""
    rows = np.arange(len(ids)) if rows is None else np.asarray(rows, np.int64)
    if len(rows) <= limit:
        return rows
    order = rows[np.argsort([ids[int(r)] for r in rows], kind="stable")]
    pick = np.random.default_rng(0).choice(len(order), size=limit, replace=False)
    return np.sort(order[pick])


def fit_geometry(vectors, rows, dims):
    """``(mean direction (D,), mean (D,), principal directions (D, r), variances (r,))`` of
    ``vectors[rows]``."""
    X = np.asarray(vectors[rows], np.float64)
    mu = X.mean(axis=0)
    Xc = X - mu
    cov = Xc.T @ Xc / max(len(X) - 1, 1)
    lam, vec = np.linalg.eigh(cov)
    r = int(max(1, min(dims, len(X) - 2, X.shape[1])))
    lam, vec = lam[::-1][:r], vec[:, ::-1][:, :r]
    lam = np.maximum(lam, 1e-6 * max(float(lam[0]), 1e-12))
    norm = np.linalg.norm(mu)
    direction = mu / norm if norm > 1e-12 else np.zeros_like(mu)
    return direction, mu, vec, lam


def encode_geometry(geometry):
    """The fitted geometry as JSON-able state (:func:`~.base.encode_array` per array)."""
    return [encode_array(a) for a in geometry]


def decode_geometry(state):
    """The inverse of :func:`encode_geometry` (float64 arrays)."""
    return tuple(decode_array(d).astype(np.float64) for d in state)


def geometry_distances(vectors, rows, geometry):
    """Raw off-centre and off-spread distances of ``vectors[rows]`` (blocked, any dtype)."""
    direction, mu, vec, lam = geometry
    cen = np.empty(len(rows))
    spr = np.empty(len(rows))
    for a in range(0, len(rows), BLOCK):
        X = np.asarray(vectors[rows[a:a + BLOCK]], np.float64)
        norms = np.maximum(np.linalg.norm(X, axis=1), 1e-12)
        cen[a:a + BLOCK] = 1.0 - (X @ direction) / norms
        P = (X - mu) @ vec
        spr[a:a + BLOCK] = np.sqrt(((P ** 2) / lam).sum(axis=1))
    return cen, spr


def isolation(sims):
    """Mean cosine distance to the neighbours (rows: items, columns: nearest first)."""
    return 1.0 - np.asarray(sims, np.float64).mean(axis=1)


def robust_ref(x):
    """``(median, scale)`` of log distances ``x``: the MAD as an SD, never zero."""
    med = float(np.median(x))
    mad = 1.4826 * float(np.median(np.abs(x - med)))
    spread = float(np.std(x))
    return med, max(mad, 1e-3 * spread, 1e-9)


def logd(x):
    return np.log(np.maximum(np.asarray(x, np.float64), 1e-9))


def combine(raw, refs):
    """Mean robust z of the components ``raw`` {name: distances} on ``refs`` {name: ref}."""
    zs = [(logd(raw[c]) - refs[c][0]) / refs[c][1] for c in COMPONENTS]
    return np.mean(zs, axis=0)


def confidence(score, ref, p):
    z = (score - ref[0]) / ref[1]
    return logistic((z - p["anomaly_z"]) / p["anomaly_softness"]), z


class AnomalyAnalyzer(Analyzer):
    name = "anomaly"
    field_specs = (FieldSpec("vc_anomaly", "float", "Visual Curation: confidence that the "
                                                    "sample looks like nothing else in the "
                                                    "dataset"),)
    issues = (IssueSpec("anomaly", "vc_anomaly"),)
    defaults = dict(anomaly_k=10, anomaly_dims=32, anomaly_z=2.5, anomaly_softness=0.5)
    param_help = dict(anomaly_k="neighbours whose distance measures isolation",
                      anomaly_dims="principal directions of the whitened distance",
                      anomaly_z="robust z-score at which the confidence is 0.5",
                      anomaly_softness="logistic scale of the confidence, in z units")

    def run(self, inp: AnalysisInput, progress=None, **params) -> AnalysisResult:
        p = self.params(**params)
        n = len(inp)
        if n < MIN_ITEMS:
            return AnalysisResult(fields=dict(vc_anomaly=[0.0] * n),
                                  summary=dict(params=p, n=n, flagged=0))
        report(progress, 0.0, "nearest neighbours")
        _, sims = inp.knn(int(p["anomaly_k"]))
        report(progress, 0.4, "dataset geometry")
        rows = fit_rows(inp.ids)
        geometry = fit_geometry(inp.vectors, rows, int(p["anomaly_dims"]))
        cen, spr = geometry_distances(inp.vectors, np.arange(n), geometry)
        raw = dict(isolation=isolation(sims), off_centre=cen, off_spread=spr)
        refs = {c: robust_ref(logd(raw[c][rows])) for c in COMPONENTS}
        score = combine(raw, refs)
        ref = robust_ref(score[rows])
        conf, z = confidence(score, ref, p)
        report(progress, 1.0, "anomalies done")
        top = np.argsort(-z)[:5]
        return AnalysisResult(fields=dict(vc_anomaly=conf.astype(float)),
                              summary=jsonable(dict(
                                  params=p, n=n, fitted_on=len(rows), dims=len(geometry[3]),
                                  flagged=int((conf >= 0.5).sum()),
                                  top=[dict(item=inp.ids[i], z=round(float(z[i]), 2))
                                       for i in top],
                                  state=dict(refs={c: list(refs[c]) for c in COMPONENTS},
                                             score=list(ref), fit_rows=len(rows),
                                             geometry=encode_geometry(geometry)))))

    def missing_state(self, details: dict, classes: list) -> str | None:
        if not ((details.get(self.name) or {}).get("state") or {}).get("refs"):
            return "the earlier run kept no anomaly calibration"
        return None

    def update(self, ctx: IncrementalInput, p: dict) -> None:
        """New items on the earlier run's calibration: its geometry (refitted on the same
        earlier items when the run kept none), its references and the new items' own
        neighbours."""
        st = ctx.state(self.name)
        inp = ctx.inp
        old = np.flatnonzero(ctx.old)
        if len(old) < MIN_ITEMS:
            ctx.put("vc_anomaly", ctx.new, [0.0] * len(ctx.new))
            return
        if st.get("geometry"):
            geometry = decode_geometry(st["geometry"])
        else:
            geometry = fit_geometry(inp.vectors, fit_rows(inp.ids, old), int(p["anomaly_dims"]))
        cen, spr = geometry_distances(inp.vectors, ctx.new, geometry)
        sims = ctx.sim[:, :int(p["anomaly_k"])]
        raw = dict(isolation=isolation(np.where(np.isfinite(sims), sims, 0.0)),
                   off_centre=cen, off_spread=spr)
        refs = {c: tuple(st["refs"][c]) for c in COMPONENTS}
        conf, _ = confidence(combine(raw, refs), tuple(st["score"]), p)
        ctx.put("vc_anomaly", ctx.new, conf.astype(float).tolist())
