"""Mislabels: items whose given label is unlikely given what they look like.

Out-of-sample class probabilities for every labelled item, from two views of the vectors:

1. **Cross-validated softmax regression** (multinomial logistic regression, L-BFGS, L2):
   ``mislabel_folds`` folds; near-copies (cosine >= ``mislabel_dup_sim``, connected through the
   kNN graph) are kept in the same fold so a copy cannot vouch for its own wrong label.
   The classifier sees the top ``mislabel_pca_dims`` principal components of the vectors.
   Regularisation ``mislabel_l2="auto"`` = sqrt(mean items per class) / 25 (small classes need a
   looser fit). Each fold trains on at most ``mislabel_max_train`` items.
2. **Weighted kNN vote** over the ``mislabel_k`` nearest labelled neighbours (weights = cosine),
   near-copies excluded for the same reason.

``P = w * P_lr + (1 - w) * P_knn`` with ``w = mislabel_lr_weight``. With ``mislabel_refit``
the classifier is cross-validated a second time, trained without the labels the first pass
flagged (confidence >= 0.5), so wrong labels no longer pull their class towards themselves;
every label is judged again by that second pass. The given label's
probability is compared with chance: ``r = C * P[given]`` (1 = as likely as a random guess), and
``vc_mislabel = logistic((log(mislabel_ratio) - log r) / mislabel_softness)`` - 0.5 when the
label is ``mislabel_ratio`` times as likely as chance (default 0.5). Items that do not look like
*any* class (class outliers, see ``outliers``) have no better label to offer, so the confidence
is multiplied by ``1 - outlier confidence``. ``vc_suggested_label`` = the most probable class.
"""
from __future__ import annotations

import numpy as np

from .base import (AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IncrementalInput,
                   IssueSpec, decode_array, encode_array, jsonable, logistic, report)


# L-BFGS stops when the loss improves by less than this (relative): the flags and suggested
# labels on the quality bench are the same as at SciPy's default 2.2e-9, with half the passes
FTOL = 1e-6


def _fit_softmax(X, y, n_classes, l2, w0=None, maxiter=300):
    from scipy.optimize import minimize

    n, d = X.shape
    C = n_classes
    rows = np.arange(n)

    def f(w):
        W = w[:d * C].reshape(d, C).astype(np.float32)
        b = w[d * C:].astype(np.float32)
        Z = X @ W + b
        Z -= Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        P = E / E.sum(axis=1, keepdims=True)
        loss = -np.log(P[rows, y] + 1e-12).sum(dtype=np.float64) + 0.5 * l2 * float((W * W).sum())
        P[rows, y] -= 1.0
        gW = X.T @ P + l2 * W
        gb = P.sum(axis=0)
        return loss, np.concatenate([gW.ravel(), gb]).astype(np.float64)

    w0 = np.zeros(d * C + C) if w0 is None else w0
    r = minimize(f, w0, jac=True, method="L-BFGS-B", options=dict(maxiter=maxiter, ftol=FTOL))
    return r.x


def predict_softmax(w, X, n_classes):
    d = X.shape[1]
    W = w[:d * n_classes].reshape(d, n_classes).astype(np.float32)
    b = w[d * n_classes:].astype(np.float32)
    Z = X @ W + b
    Z -= Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def near_copy_groups(inp: AnalysisInput, k: int, min_sim: float) -> np.ndarray:
    """Connected components of kNN edges with cosine >= ``min_sim`` (component id per item)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(inp)
    ind, sim = inp.knn(k)
    r, c = np.nonzero(sim >= min_sim)
    g = coo_matrix((np.ones(len(r)), (r, ind[r, c])), shape=(n, n))
    return connected_components(g, directed=False)[1]


class Projection:
    """The vectors' rows on the PCA components, computed when indexed: ``proj[rows]`` is a
    float32 ``(len(rows), dims)`` array; an N x dims copy is never held (at ten million rows
    and 256 components it would be 5 GB even as float16)."""

    def __init__(self, vectors, mean, comps):
        self.vectors, self.mean, self.comps = vectors, mean, comps

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, rows) -> np.ndarray:
        from .. import knn as _knn

        return _knn.project(self.vectors[rows], self.mean, self.comps)


def predict_rows(w, X, rows, n_classes, out, block: int = 65536):
    """``out[rows] = predict_softmax(w, X[rows])`` in row blocks."""
    for b0 in range(0, len(rows), block):
        r = rows[b0:b0 + block]
        out[r] = predict_softmax(w, np.asarray(X[r], dtype=np.float32), n_classes)


def cv_probabilities(X, y, n_classes, l2, folds, groups, max_train=50000, seed=0,
                     progress=None, span=(0.0, 1.0), y_train=None):
    """Out-of-fold softmax-regression probabilities ``(N, C)`` for labelled rows (y >= 0) and a
    prediction from the last fold's model for unlabelled rows; and that model (None if no fold
    had items to test). ``y_train``: the labels the folds train on (default ``y``; -1 leaves a
    row out of training, not out of the predictions)."""
    from threadpoolctl import threadpool_limits

    from .base import report

    # skinny matrix products: multi-threaded BLAS only spins (10x slower on a busy machine)
    with threadpool_limits(1, user_api="blas"):
        return _cv_probabilities(X, y, n_classes, l2, folds, groups, max_train, seed,
                                 progress, span, report, y if y_train is None else y_train)


def _cv_probabilities(X, y, n_classes, l2, folds, groups, max_train, seed, progress, span,
                      report, y_train):
    rng = np.random.default_rng(seed)
    n = len(y)
    ug, ginv = np.unique(groups, return_inverse=True)
    fold_of_group = rng.permutation(len(ug)) % folds
    fold = fold_of_group[ginv]
    lab = y >= 0
    P = np.zeros((n, n_classes), np.float32)
    w = None
    for f in range(folds):
        tr = np.flatnonzero((y_train >= 0) & (fold != f))
        te = np.flatnonzero(lab & (fold == f))
        if len(te) == 0:
            continue
        if len(tr) > max_train:
            tr = np.sort(rng.choice(tr, max_train, replace=False))
        w = _fit_softmax(np.ascontiguousarray(X[tr], dtype=np.float32), y_train[tr], n_classes,
                         l2, w0=w)
        predict_rows(w, X, te, n_classes, P)
        report(progress, span[0] + (span[1] - span[0]) * (f + 1) / folds, "cross-validated classifier")
    unl = np.flatnonzero(~lab)
    if len(unl):
        if w is not None:
            predict_rows(w, X, unl, n_classes, P)
        else:
            P[unl] = 1.0 / n_classes
    return P, w


def knn_probabilities(inp, y, n_classes, k, dup_sim, into=None, weights=(0.0, 1.0)):
    ind, sim = inp.knn(k)
    return vote(ind, sim, y, n_classes, dup_sim, into=into, weights=weights)


def vote(ind, sim, y, n_classes, dup_sim, block: int = 65536, into=None, weights=(0.0, 1.0)):
    """Similarity-weighted label vote of the neighbours ``ind`` (copies, sim >= dup_sim,
    excluded); rows with no vote get the uniform distribution. float32 ``(N, C)``, summed in
    float64 row blocks: the temporaries stay ``block x k`` whatever N is.

    ``into``: a float32 ``(N, C)`` array blended with the vote block by block,
    ``into = weights[0] into + weights[1] vote`` (no second N x C array); returned."""
    n, k = ind.shape
    P = np.empty((n, n_classes), np.float32) if into is None else into
    for b0 in range(0, n, block):
        bi, bs = ind[b0:b0 + block], sim[b0:b0 + block]
        ok = (bi >= 0) & (y[np.maximum(bi, 0)] >= 0) & (bs < dup_sim)
        w = np.where(ok, np.maximum(bs, 0.0), 0.0).astype(np.float64)
        Pb = np.zeros((len(bi), n_classes))
        np.add.at(Pb, (np.repeat(np.arange(len(bi)), k),
                       np.where(ok, y[np.maximum(bi, 0)], 0).ravel()), w.ravel())
        s = Pb.sum(axis=1, keepdims=True)
        V = np.where(s > 0, Pb / np.maximum(s, 1e-12), 1.0 / n_classes).astype(np.float32)
        if into is None:
            P[b0:b0 + block] = V
        else:
            P[b0:b0 + block] = weights[0] * P[b0:b0 + block] + weights[1] * V
    return P


def refit_labels(y, conf, n_classes):
    """The labels a second fit trains on: ``y`` without those flagged (``conf`` >= 0.5), except
    in a class that would lose more than half of its labels (there the first fit knew too
    little of the class to be trusted).

    >>> refit_labels(np.array([0, 0, 0, 1, 1, -1]), np.array([.9, .1, .2, .8, .7, 0]), 2)
    array([-1,  0,  0,  1,  1, -1])
    """
    flag = (conf >= 0.5) & (y >= 0)
    lab = y >= 0
    lost = np.bincount(y[flag], minlength=n_classes)
    keep = lost <= np.bincount(y[lab], minlength=n_classes) / 2
    return np.where(flag & keep[np.maximum(y, 0)], -1, y)


def label_confidence(P, y, p):
    """Confidence that the given label is wrong, from the blended class probabilities."""
    C = P.shape[1]
    lab = y >= 0
    pg = np.where(lab, P[np.arange(len(y)), np.maximum(y, 0)], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (np.log(float(p["mislabel_ratio"])) - np.log(np.maximum(C * pg, 1e-12))) \
            / float(p["mislabel_softness"])
    return logistic(x)


def blend_weights(p) -> tuple:
    """``(classifier, vote)`` weights of the blended class probabilities (:func:`vote`'s
    ``weights``)."""
    a = float(p["mislabel_lr_weight"])
    return a, 1.0 - a


class MislabelsAnalyzer(Analyzer):
    name = "mislabels"
    needs_labels = True
    field_specs = (
        FieldSpec("vc_mislabel", "float", "Visual Curation: confidence that the label is wrong"),
        FieldSpec("vc_suggested_label", "str", "Visual Curation: the label the neighbours "
                                               "suggest"))
    issues = (IssueSpec("mislabel", "vc_mislabel"),)
    defaults = dict(
        mislabel_folds=5,
        mislabel_pca_dims=256,
        mislabel_l2="auto",
        mislabel_k=30,
        mislabel_lr_weight=0.85,
        mislabel_ratio=0.5,
        mislabel_softness=0.5,
        mislabel_dup_sim=0.95,
        mislabel_max_train=50000,
        mislabel_outlier_discount=True,
        mislabel_refit=True,
        mislabel_seed=0,
    )
    param_help = dict(
        mislabel_folds="cross-validation folds of the classifier",
        mislabel_pca_dims="the classifier sees the vectors' top principal components",
        mislabel_l2='L2 penalty of the classifier; "auto" = sqrt(items per class) / 25',
        mislabel_k="neighbours in the kNN vote",
        mislabel_lr_weight="weight of the classifier vs the kNN vote",
        mislabel_ratio="confidence 0.5 where P(given label) = this x chance (1/C)",
        mislabel_softness="logistic scale of the confidence, in log units",
        mislabel_dup_sim="neighbours this similar are copies: excluded from votes, same fold",
        mislabel_max_train="most items a fold trains on",
        mislabel_outlier_discount="multiply by 1 - outlier confidence",
        mislabel_refit="fit the classifier a second time without the labels the first fit "
                       "flagged (confidence >= 0.5), then flag again",
        mislabel_seed="fold assignment seed",
    )

    def run(self, inp: AnalysisInput, progress=None, **params) -> AnalysisResult:
        p = self.params(**params)
        self.check(inp)
        n = len(inp)
        y, names = inp.label_array()
        C = len(names)
        if C < 2 or n < 3:
            return AnalysisResult(
                fields=dict(vc_mislabel=[None if l is None else 0.0 for l in inp.labels],
                            vc_suggested_label=list(inp.labels)),
                summary=dict(params=p, n=n, classes=C, note="fewer than 2 classes"))
        report(progress, 0.0, "near copies")
        k = int(p["mislabel_k"])
        groups = near_copy_groups(inp, k, float(p["mislabel_dup_sim"]))
        n_lab = int((y >= 0).sum())
        l2 = p["mislabel_l2"]
        l2 = float(np.sqrt(n_lab / C) / 25.0) if l2 in (None, "auto") else float(l2)
        from .. import knn as _knn

        mean, comps = _knn.pca(inp.vectors, int(p["mislabel_pca_dims"]), sample=50000)
        X = Projection(inp.vectors, mean, comps)
        discount, support = 1.0, None
        if p["mislabel_outlier_discount"]:
            from .outliers import outlier_scores, support_state

            oc, _, sup = outlier_scores(inp, y, C, inp.settings("outliers"), progress,
                                        (0.0, 0.05))
            discount = 1.0 - np.nan_to_num(oc, nan=0.0)
            support = support_state(sup, names)
            del oc, sup

        def judged(y_train, span):
            """Confidence, suggestion and last-fold model of a fit trained on ``y_train``."""
            P_lr, model = cv_probabilities(X, y, C, l2, int(p["mislabel_folds"]), groups,
                                           int(p["mislabel_max_train"]),
                                           int(p["mislabel_seed"]), progress, span,
                                           y_train=y_train)
            # the vote is blended into the classifier's probabilities block by block, and only
            # the suggestion is kept of them: no second N x C array, and the class support
            # runs without any (at ten million items and 20 classes, 0.8 GB each)
            P = knn_probabilities(inp, y, C, k, float(p["mislabel_dup_sim"]), into=P_lr,
                                  weights=blend_weights(p))
            return label_confidence(P, y, p) * discount, P.argmax(axis=1), model

        refit = bool(p["mislabel_refit"])
        conf, sugg, model = judged(y, (0.05, 0.5 if refit else 0.95))
        left_out = None
        if refit:                        # the second fit learns without the flagged labels
            y_train = refit_labels(y, conf, C)
            left_out = int((y_train < 0).sum() - (y < 0).sum())
            conf, sugg, model = judged(y_train, (0.5, 0.95))
        del groups
        state = dict(classes=names, l2=l2, pca_mean=encode_array(mean), pca_comps=encode_array(comps),
                     model=encode_array(model) if model is not None else None)
        if support is not None:
            state["support"] = support
        lab = y >= 0
        report(progress, 1.0, "mislabels done")
        vals = np.where(lab, conf, np.nan)
        acc = float((sugg[lab] == y[lab]).mean()) if lab.any() else None
        summary = dict(params=dict(p, mislabel_l2=l2), n=n, classes=C, labelled=n_lab,
                       flagged=int(np.nansum(conf[lab] >= 0.5)), agreement=acc, state=state,
                       refit_left_out=left_out)
        return AnalysisResult(fields=dict(vc_mislabel=vals,
                                          vc_suggested_label=[names[j] for j in sugg]),
                              summary=jsonable(summary))

    def missing_state(self, details: dict, classes: list) -> str | None:
        from .outliers import support_missing

        why = support_missing(details, classes)
        if why or len(classes) < 2:
            return why
        st = (details.get(self.name) or {}).get("state") or {}
        if list(st.get("classes") or []) != list(classes):
            return "the label classes changed"
        return None

    def update(self, ctx: IncrementalInput, p: dict) -> None:
        """The earlier run's classifier (PCA + softmax of its last fold) and a kNN vote."""
        C = len(ctx.classes)
        if C < 2:
            return
        from .. import knn as _knn
        from .outliers import incremental_confidence

        st = ctx.state(self.name)
        new, y = ctx.new, ctx.codes[ctx.new]
        X = _knn.project(ctx.inp.vectors[new], decode_array(st["pca_mean"]), decode_array(st["pca_comps"]))
        P_lr = (predict_softmax(decode_array(st["model"]).astype(np.float64), X, C)
                if st.get("model") else np.full((len(new), C), 1.0 / C))
        kk = int(p["mislabel_k"])
        P = vote(ctx.ind[:, :kk], ctx.sim[:, :kk], ctx.codes, C, float(p["mislabel_dup_sim"]),
                 into=P_lr, weights=blend_weights(p))
        conf = label_confidence(P, y, p)
        oc = incremental_confidence(ctx) if p["mislabel_outlier_discount"] else None
        if oc is not None:
            conf = conf * (1.0 - np.nan_to_num(oc, nan=0.0))
        ctx.put("vc_mislabel", new, [float(c) if lab >= 0 else None for c, lab in zip(conf, y)])
        ctx.put("vc_suggested_label", new, [ctx.classes[j] for j in P.argmax(axis=1)])
