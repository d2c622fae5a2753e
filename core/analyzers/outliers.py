"""Class outliers: the label may be valid, but the item does not look like its class - nor like
any other class (an item that looks like another class is a *mislabel*, see ``mislabels``).

Score = the smaller of two robust z-scores (dataset-relative), each of a log normalised distance
(see :mod:`._support`): to the item's own class, and to the class it is closest to. An outlier
must be far from both: mislabels are far from their own class only; typical members of loose
classes are not far once distances are normalised by the class's own tightness.
Confidence = logistic((z - outlier_z) / outlier_softness): 0.5 at ``outlier_z`` robust SDs.
"""
from __future__ import annotations

import numpy as np

from .support import class_support, robust_ref
from .base import (AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IncrementalInput,
                   IssueSpec, jsonable, logistic, report)


def outlier_scores(inp, codes, n_classes, p, progress=None, span=(0.0, 1.0)):
    sup = class_support(inp, codes, n_classes, progress, span)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(np.maximum(sup["own"], 1e-6))
        b = np.log(np.maximum(sup["best"], 1e-6))
    ref = dict(own=robust_ref(a, 1e-3), best=robust_ref(b, 1e-3))
    conf, z = outlier_confidence(a, b, ref, p)
    conf[codes < 0] = np.nan
    sup = dict(sup, ref=ref)
    return conf, z, sup


def outlier_confidence(a, b, ref, p):
    """Confidence from log normalised distances ``a`` (own class) and ``b`` (nearest class),
    given the reference ``{"own": (median, scale), "best": ...}`` of the dataset."""
    za = (a - ref["own"][0]) / ref["own"][1]
    zb = (b - ref["best"][0]) / ref["best"][1]
    za = np.where(np.isfinite(za), za, zb)  # class of one: judged by the nearest class only
    z = np.minimum(za, zb)
    conf = logistic((z - p["outlier_z"]) / p["outlier_softness"])
    return conf, z


class OutliersAnalyzer(Analyzer):
    name = "outliers"
    needs_labels = True
    field_specs = (FieldSpec("vc_outlier", "float", "Visual Curation: confidence that the "
                                                    "sample does not look like its class"),)
    issues = (IssueSpec("outlier", "vc_outlier"),)
    defaults = dict(outlier_z=2.5, outlier_softness=0.5)
    param_help = dict(outlier_z="robust z-score at which the confidence is 0.5",
                      outlier_softness="logistic scale of the confidence, in z units")

    def run(self, inp: AnalysisInput, progress=None, **params) -> AnalysisResult:
        p = self.params(**params)
        self.check(inp)
        codes, names = inp.label_array()
        report(progress, 0.0, "class support")
        conf, z, sup = outlier_scores(inp, codes, len(names), p, progress, (0.0, 0.95))
        vals = np.where(np.isfinite(conf), conf, np.nan).astype(float)
        report(progress, 1.0, "outliers done")
        return AnalysisResult(fields=dict(vc_outlier=vals), summary=jsonable(dict(
            params=p, n=len(inp), classes=len(names), flagged=int(np.nansum(conf >= 0.5)),
            state=support_state(sup, names))))

    def missing_state(self, details: dict, classes: list) -> str | None:
        return support_missing(details, classes)

    def update(self, ctx: IncrementalInput, p: dict) -> None:
        conf = incremental_confidence(ctx)
        if conf is not None:
            ctx.put("vc_outlier", ctx.new, [None if not np.isfinite(x) else float(x)
                                            for x in conf])


def support_state(sup, names):
    """What incremental runs need to place new items: each class's typical support and the
    robust-z references."""
    return dict(class_medians={str(c): float(m) for c, m in zip(names, sup["medians"])},
                ref={k: [float(v[0]), float(v[1])] for k, v in sup["ref"].items()})


def support_missing(details, classes):
    """Why the earlier run kept no class-support calibration for new items (None: it did)."""
    if len(classes) and not ((details.get("outliers") or {}).get("state") or (
            (details.get("mislabels") or {}).get("state") or {}).get("support")):
        return "the earlier run kept no class-support calibration"
    return None


def incremental_confidence(ctx):
    """Outlier confidence of ``ctx.new`` (computed once per run, kept on ``ctx``): each new
    item's exact support by every class, normalised by each class's typical support, on the
    earlier run's robust references. None without classes."""
    if ctx.outlier_confidence is not None or not len(ctx.classes):
        return ctx.outlier_confidence
    import warnings

    st = ctx.state("outliers") or (ctx.state("mislabels") or {}).get("support")
    meds = np.array([st["class_medians"].get(c, np.nan) for c in ctx.classes], np.float64)
    fin = meds[np.isfinite(meds)]
    meds[~np.isfinite(meds)] = float(np.median(fin)) if len(fin) else 0.5
    nd = (1.0 - ctx.support) / np.maximum(1.0 - meds, 1e-6)[None, :]
    y = ctx.codes[ctx.new]
    own = np.where(y >= 0, nd[np.arange(len(ctx.new)), np.maximum(y, 0)], np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        best = np.nanmin(np.where(np.isfinite(nd), nd, np.nan), axis=1)
        a = np.log(np.maximum(own, 1e-6))
        b = np.log(np.maximum(best, 1e-6))
    ref = {k: tuple(v) for k, v in st["ref"].items()}
    conf, _ = outlier_confidence(a, b, ref, ctx.inp.settings("outliers"))
    conf[y < 0] = np.nan
    ctx.outlier_confidence = conf
    return conf
