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
from .base import (AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IssueSpec,
                   jsonable, logistic, report)


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
        vals = [None if not np.isfinite(x) else float(x) for x in conf]
        report(progress, 1.0, "outliers done")
        return AnalysisResult(fields=dict(vc_outlier=vals), summary=jsonable(dict(
            params=p, n=len(inp), classes=len(names), flagged=int(np.nansum(conf >= 0.5)),
            state=support_state(sup, names))))


def support_state(sup, names):
    """What incremental runs need to place new items: each class's typical support and the
    robust-z references."""
    return dict(class_medians={str(c): float(m) for c, m in zip(names, sup["medians"])},
                ref={k: [float(v[0]), float(v[1])] for k, v in sup["ref"].items()})
