"""Uniqueness: 0 = highly redundant (many near-identical neighbours) ... 1 = highly unique.

Raw score: weighted mean cosine distance to the ``uniqueness_k`` nearest neighbours (exact
kNN), the r-th neighbour weighted ``uniqueness_decay ** (r - 1)``: the nearest neighbours
dominate, so an item with one exact copy is redundant even if its other neighbours are far.
Calibration is dataset-relative: the value is the item's rank quantile of that distance (ties
share their mean rank), so 0.5 means "as unique as the median item of this dataset", exact copies
go to the bottom and the farthest items to the top, whatever the embedding model's scale.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .base import (AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IncrementalInput,
                   jsonable, report)


QUANTILES = 1001


def raw_distance(sims, decay, block: int = 65536):
    """Weighted mean cosine distance to the neighbours, nearest first (weights decay^(r-1));
    in row blocks (the float64 temporaries stay ``block x k`` whatever N is)."""
    w = float(decay) ** np.arange(sims.shape[1])
    out = np.empty(len(sims), np.float64)
    for b0 in range(0, len(sims), block):
        out[b0:b0 + block] = ((1.0 - sims[b0:b0 + block].astype(np.float64)) * w).sum(axis=1) \
            / w.sum()
    return out


def place(dist, quantiles):
    """Uniqueness of new items from the reference distance quantiles of an earlier run."""
    q = np.asarray(quantiles, np.float64)
    return np.interp(dist, q, np.linspace(0, 1, len(q)))


class UniquenessAnalyzer(Analyzer):
    name = "uniqueness"
    field_specs = (FieldSpec("vc_uniqueness", "float",
                             "Visual Curation: 0 highly redundant … 1 highly unique"),)
    defaults = dict(uniqueness_k=10, uniqueness_decay=0.5)
    param_help = dict(uniqueness_k="neighbours whose distances measure redundancy",
                      uniqueness_decay="weight ratio between successive neighbours")

    def run(self, inp: AnalysisInput, progress=None, **params) -> AnalysisResult:
        p = self.params(**params)
        n = len(inp)
        if n < 2:
            return AnalysisResult(fields=dict(vc_uniqueness=[1.0] * n), summary=dict(params=p, n=n))
        report(progress, 0.0, "nearest neighbours")
        _, sims = inp.knn(int(p["uniqueness_k"]))
        dist = raw_distance(sims, p["uniqueness_decay"])
        q = (rankdata(dist, method="average") - 1.0) / max(n - 1, 1)
        report(progress, 1.0, "uniqueness done")
        summary = dict(params=p, n=n, weighted_distance=dict(
            median=float(np.median(dist)), p05=float(np.percentile(dist, 5)),
            p95=float(np.percentile(dist, 95))),
            # the calibration later items are placed on (incremental runs)
            state=dict(dist_quantiles=np.quantile(dist, np.linspace(0, 1, QUANTILES)).tolist()))
        return AnalysisResult(fields=dict(vc_uniqueness=q.astype(float)),
                              summary=jsonable(summary))

    def missing_state(self, details: dict, classes: list) -> str | None:
        if not (details.get(self.name) or {}).get("state"):
            return "the earlier run kept no uniqueness calibration"
        return None

    def update(self, ctx: IncrementalInput, p: dict) -> None:
        """The new item's weighted neighbour distance on the earlier run's quantiles."""
        q = ctx.state(self.name)["dist_quantiles"]
        dist = raw_distance(ctx.sim[:, :int(p["uniqueness_k"])], p["uniqueness_decay"])
        ctx.put("vc_uniqueness", ctx.new, place(dist, q).astype(float).tolist())
