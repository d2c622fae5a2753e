"""Scoring analyzer outputs against the planted truth of tools/planted_sets.py (``truth.json``).

Every function takes per-item values aligned with ``names`` (the file names, keys of
truth.json) and returns plain floats, so the benchmark script and the CI test share them::

    truth = load_truth(bench_dir)
    names = [Path(p).name for p in filepaths]
    m = score_all(fields, names, truth)        # fields: {"vc_dup_group": [...], ...}

Truth conventions (see tools/planted_sets.py):
  * duplicate pairs: every pair inside {clean image} + {its dup_of copies}; quality-defect
    derivations (``defect`` set) are *not* duplicates;
  * mislabels: ``mislabeled`` True (planted outliers are not mislabels);
  * outliers: ``outlier`` True;
  * quality: ``defect`` == "blur" / "dark" / "bright";
  * clusters: NMI against the true class (outliers form one extra class ``__outlier__``).
"""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np

QUALITY = ("blur", "dark", "bright")
LEVELS = 5


def load_truth(bench_dir) -> dict:
    return json.loads((Path(bench_dir) / "truth.json").read_text())


def _f(x):
    return None if x is None else float(x)


def _pairs(groups):
    out = set()
    for mem in groups.values():
        for a, b in combinations(sorted(mem), 2):
            out.add((a, b))
    return out


def true_dup_pairs(names, truth) -> set:
    groups = {}
    for i, n in enumerate(names):
        src = truth[n].get("dup_of")
        if src:
            groups.setdefault(src, set()).add(i)
    pos = {n: i for i, n in enumerate(names)}
    for src, mem in groups.items():
        if src in pos:
            mem.add(pos[src])
    return _pairs(groups)


def dup_prf(dup_group, names, truth) -> dict:
    """Pairwise precision / recall / F1 of the predicted groups (``vc_dup_group``)."""
    groups = {}
    for i, g in enumerate(dup_group):
        if g is not None:
            groups.setdefault(g, set()).add(i)
    pred, true = _pairs(groups), true_dup_pairs(names, truth)
    tp = len(pred & true)
    p = tp / len(pred) if pred else (1.0 if not true else 0.0)
    r = tp / len(true) if true else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return dict(dup_precision=p, dup_recall=r, dup_f1=f1, dup_pred_pairs=len(pred),
                dup_true_pairs=len(true))


def _conf(values):
    return np.array([np.nan if v is None else float(v) for v in values], float)


def pr_at(conf, positive, thr=0.5) -> tuple:
    pred = np.nan_to_num(_conf(conf), nan=0.0) >= thr
    pos = np.asarray(positive, bool)
    tp = int((pred & pos).sum())
    p = tp / pred.sum() if pred.sum() else (1.0 if not pos.any() else 0.0)
    r = tp / pos.sum() if pos.sum() else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return float(p), float(r), float(f1)


def mislabel_pr(conf, names, truth, thr=0.5) -> dict:
    pos = [bool(truth[n].get("mislabeled")) for n in names]
    p, r, f1 = pr_at(conf, pos, thr)
    return dict(mislabel_precision=p, mislabel_recall=r, mislabel_f1=f1)


def auroc(scores, positive) -> float | None:
    """Mann-Whitney AUROC (ties count half); NaN scores rank lowest."""
    from scipy.stats import rankdata

    s = np.nan_to_num(_conf(scores), nan=-np.inf)
    pos = np.asarray(positive, bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return None
    r = rankdata(s)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def outlier_auroc(scores, names, truth) -> dict:
    return dict(outlier_auroc=auroc(scores, [bool(truth[n].get("outlier")) for n in names]))


def quality_f1(conf_by_kind: dict, names, truth, thr=0.5) -> dict:
    out = {}
    for kind in QUALITY:
        if conf_by_kind.get(kind) is None:
            continue
        pos = [truth[n].get("defect") == kind for n in names]
        p, r, f1 = pr_at(conf_by_kind[kind], pos, thr)
        out.update({f"{kind}_precision": p, f"{kind}_recall": r, f"{kind}_f1": f1})
    return out


def true_classes(names, truth):
    return [truth[n]["true"] if truth[n].get("true") is not None else "__outlier__" for n in names]


def nesting(levels) -> float:
    """Share of level-(k+1) clusters lying inside a single level-k cluster, over all k."""
    ok = tot = 0
    for a, b in zip(levels[:-1], levels[1:]):
        parents = {}
        for pa, ch in zip(a, b):
            parents.setdefault(ch, set()).add(pa)
        ok += sum(len(s) == 1 for s in parents.values())
        tot += len(parents)
    return ok / tot if tot else 1.0


def cluster_nmi(levels, names, truth) -> dict:
    """NMI of each level vs the true class; ``cluster_nmi`` = the level whose cluster count is
    closest to the number of classes."""
    from sklearn.metrics import normalized_mutual_info_score as nmi

    true = true_classes(names, truth)
    n_classes = len({t for t in true if t != "__outlier__"})
    out, best = {}, None
    for l, lab in enumerate(levels, 1):
        k = len(set(lab))
        v = float(nmi(true, lab))
        out[f"nmi_{l}"] = v
        out[f"clusters_{l}"] = k
        if best is None or abs(k - n_classes) < abs(best[1] - n_classes):
            best = (l, k, v)
    out.update(cluster_nmi=best[2], cluster_nmi_level=best[0], n_classes=n_classes,
               nesting=nesting(levels))
    return out


def score_all(fields: dict, names, truth) -> dict:
    """All metrics that the given analyzer output fields allow."""
    m = {}
    if "vc_dup_group" in fields:
        m.update(dup_prf(fields["vc_dup_group"], names, truth))
    if "vc_mislabel" in fields:
        m.update(mislabel_pr(fields["vc_mislabel"], names, truth))
    if "vc_outlier" in fields:
        m.update(outlier_auroc(fields["vc_outlier"], names, truth))
    if "vc_anomaly" in fields:
        m["anomaly_auroc"] = outlier_auroc(fields["vc_anomaly"], names, truth)["outlier_auroc"]
    q = {k: fields.get(f"vc_{k}") for k in QUALITY}
    if any(v is not None for v in q.values()):
        m.update(quality_f1(q, names, truth))
    lv = [fields.get(f"vc_cluster_{l}") for l in range(1, LEVELS + 1)]
    if all(v is not None for v in lv):
        m.update(cluster_nmi(lv, names, truth))
    return m


#: rows of the printed table: (metric key, label, goal or None); a goal that differs by domain
#: is a string "Fashion-MNIST/stamps"
TABLE = [
    ("dup_f1", "near-dup pair F1", 0.95),
    ("dup_precision", "  precision", 0.98),
    ("dup_recall", "  recall", None),
    ("mislabel_precision", "mislabel precision@0.5", "0.85/0.65"),
    ("mislabel_recall", "mislabel recall@0.5", "0.85/0.65"),
    ("outlier_auroc", "outlier AUROC", 0.98),
    ("anomaly_auroc", "anomaly AUROC (no labels)", 0.95),
    ("blur_f1", "blur F1@0.5", 0.95),
    ("dark_f1", "dark F1@0.5", 0.95),
    ("bright_f1", "bright F1@0.5", 0.95),
    ("cluster_nmi", "cluster NMI (level ~ #classes)", 0.70),
    ("cluster_nmi_level", "  level used", None),
    ("nesting", "cluster nesting", 1.0),
]


def format_table(results: dict, goals: dict | None = None) -> str:
    """``results``: {column name: metrics dict}. Returns a fixed-width text table."""
    cols = list(results)
    w = max(12, *(len(c) + 2 for c in cols))
    lines = [f"{'metric':34s}" + "".join(f"{c:>{w}s}" for c in cols) + f"{'goal':>11s}"]
    for key, label, goal in TABLE:
        if not any(key in results[c] for c in cols):
            continue
        cells = []
        for c in cols:
            v = results[c].get(key)
            cells.append(f"{'-':>{w}s}" if v is None else
                         (f"{v:>{w}d}" if isinstance(v, int) else f"{v:>{w}.3f}"))
        g = (goals or {}).get(key, goal)
        goal_s = "" if g is None else (f"{g:>11s}" if isinstance(g, str) else f"{g:>11.2f}")
        lines.append(f"{label:34s}" + "".join(cells) + goal_s)
    return "\n".join(lines)
