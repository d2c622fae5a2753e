"""Label propagation: a few labelled examples per class → a label and a confidence for the rest.

The method (:func:`propagate`), on the item vectors:

1. **Diffusion over the kNN graph** (Zhou et al., "Learning with local and global
   consistency"): the cosine kNN graph (``k`` neighbours, weights ``max(cos, 0)³``, made
   symmetric and normalised ``D^-½ W D^-½``) spreads each class's examples (each class's
   examples weigh one in all, so a class with many examples does not flood the rest) by solving
   ``(I - α S) F = Y`` with conjugate gradients, ``α = 0.99``; each class's column is then
   normalised to sum one ("class mass normalisation").
2. **A linear classifier** on the examples: logistic regression with balanced class weights on
   the centred, L2-normalised vectors. It sees the global shape of a class the graph may
   reach only through a thin bridge.

The label is the most probable class of the mean of the two distributions. The confidence is
that probability after a **temperature calibrated on the examples themselves**: each example is
predicted from the others (``folds``-fold cross-validation), and the temperature that makes
those held-out predictions' confidences honest (least log-loss) is applied to every item.
So a confidence means the same on a tight and on a loose domain. It is then **capped by the
predicted class's own record** in those held-out predictions (:func:`_class_record`): a class that
examples of other classes were confidently predicted as (a letter drawn in upper and in lower
case, two names for one kind of object) is as trustworthy as that record, however sure the
item's own scores are.

Optionally (``text_prompts``, CLIP embeddings only) each class name, embedded by the model's
text tower as "a photo of a <class>", is one more example of its class for the linear
classifier.
"""
from __future__ import annotations

import numpy as np

from .knn import knn_graph, normalize


def _graph(ind, sim, gamma=3.0):
    from scipy import sparse

    n, k = ind.shape
    w = np.clip(sim.astype(np.float64), 0, None) ** gamma
    W = sparse.csr_matrix((w.ravel(), (np.repeat(np.arange(n), k), ind.ravel())), shape=(n, n))
    W = W + W.T
    d = np.asarray(W.sum(axis=1)).ravel()
    d[d == 0] = 1.0
    Dm = sparse.diags(1.0 / np.sqrt(d))
    return (Dm @ W @ Dm).tocsr()


def diffuse(S, rows, y, n_classes, alpha=0.99, maxiter=100):
    """Class scores ``(N, C)`` of every item from the examples ``rows`` (classes ``y``), each
    class column normalised to sum one; ``S`` from the normalised kNN graph."""
    from scipy import sparse
    from scipy.sparse.linalg import cg

    n = S.shape[0]
    A = (sparse.eye(n) - alpha * S).tocsr()
    F = np.zeros((n, n_classes))
    for c in range(n_classes):
        mine = rows[y == c]
        if not len(mine):
            continue
        b = np.zeros(n)
        b[mine] = 1.0 / len(mine)
        F[:, c], _ = cg(A, b, rtol=1e-5, maxiter=maxiter)
    F = np.clip(F, 0, None)
    F /= np.maximum(F.sum(axis=0, keepdims=True), 1e-12)
    return F / np.maximum(F.sum(axis=1, keepdims=True), 1e-12)


def _linear(Z, rows, y, n_classes, C, extra=None):
    from sklearn.linear_model import LogisticRegression

    X, t = Z[rows], y
    if extra is not None:
        X, t = np.vstack([X, extra[0]]), np.concatenate([t, extra[1]])
    P = np.zeros((len(Z), n_classes))
    if len(np.unique(t)) < 2:
        P[:, t[0]] = 1.0
        return P
    lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced").fit(X, t)
    P[:, lr.classes_] = lr.predict_proba(Z)
    return P


def _scores(S, Z, rows, y, n_classes, C, extra=None):
    return 0.5 * diffuse(S, rows, y, n_classes) + 0.5 * _linear(Z, rows, y, n_classes, C, extra)


def _temperature(P, y):
    """The temperature ``T`` (applied as ``P ** (1/T)``, renormalised) with the least log-loss
    of the held-out predictions ``P`` of classes ``y``."""
    logp = np.log(np.clip(P, 1e-9, 1))
    best, best_t = np.inf, 1.0
    for t in np.exp(np.linspace(np.log(0.1), np.log(10), 61)):
        z = logp / t
        z -= z.max(axis=1, keepdims=True)
        q = np.exp(z)
        q /= q.sum(axis=1, keepdims=True)
        loss = -np.log(np.clip(q[np.arange(len(y)), y], 1e-12, 1)).mean()
        if loss < best:
            best, best_t = loss, t
    return best_t


def _class_record(held, y, n_classes, weight, prior: float = 1.0):
    """Per class ``c``: the share of the held-out predictions of ``c`` (the examples' scores
    ``held``, true classes ``y``) that were right, each prediction counted by its calibrated
    confidence ``weight`` (an unsure slip says little about a class; a confident one says
    much), with ``prior`` counts of a right prediction per class.

    >>> held = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8]])
    >>> r = _class_record(held, np.array([0, 1, 1]), 2, weight=held.max(axis=1))
    >>> [round(float(x), 2) for x in r]     # class 0 took an example of class 1
    [0.7, 1.0]
    """
    pred = held.argmax(axis=1)
    right = prior + np.bincount(pred, weights=weight * (pred == y), minlength=n_classes)
    return right / (prior + np.bincount(pred, weights=weight, minlength=n_classes))


def _apply_temperature(P, t):
    z = np.log(np.clip(P, 1e-9, 1)) / t
    z -= z.max(axis=1, keepdims=True)
    q = np.exp(z)
    return q / q.sum(axis=1, keepdims=True)


def propagate(vectors, labels, *, k: int = 10, C: float = 10.0, folds: int = 5, knn=None,
              text_examples=None, seed: int = 0):
    """Labels and confidences for every item from the labelled ones.

    Args:
        vectors: ``(N, D)`` item vectors
        labels: N class names, None for the items to label
        k: neighbours per item in the graph
        C: inverse L2 strength of the linear classifier
        folds: cross-validation folds over the examples that calibrate the confidence (more
            folds: each held-out prediction comes from nearly as many examples as the final
            one, whose scores are more peaked; with 3 the confident share was over-confident)
        knn: a precomputed ``(ind, sims)`` cosine kNN graph of ``vectors`` (self excluded)
        text_examples: optional ``(vectors (M, D), class names (M,))``: extra examples for the
            linear classifier (class names embedded by a CLIP text tower)

    Returns:
        ``(classes, predicted class index (N,), confidence (N,), probabilities (N, C))``;
        examples keep their own class with confidence 1.

    Example::

        classes, pred, conf, P = propagate(vecs, ["cat", None, "dog", None, ...])
    """
    labels = list(labels)
    classes = sorted({str(x) for x in labels if x is not None})
    if not classes:
        raise ValueError("No labelled examples: label at least a few items per class")
    cid = {c: i for i, c in enumerate(classes)}
    rows = np.array([i for i, x in enumerate(labels) if x is not None], np.int64)
    y = np.array([cid[str(labels[i])] for i in rows], np.int64)
    n_classes = len(classes)
    X = np.asarray(vectors, np.float32)
    if knn is None:
        ind, sim, _ = knn_graph(normalize(X), min(k, len(X) - 1))
    else:
        ind, sim = knn
    S = _graph(ind[:, :k], sim[:, :k])
    Z = normalize(X - X.astype(np.float64).mean(axis=0).astype(np.float32))
    extra = None
    if text_examples is not None:
        tv, tn = text_examples
        keep = [j for j, c in enumerate(tn) if c in cid]
        if keep:
            tz = normalize(np.asarray(tv, np.float32)[keep] - X.mean(axis=0))
            extra = (tz, np.array([cid[tn[j]] for j in keep], np.int64))

    # calibration: each example predicted from the other examples
    held = np.zeros((len(rows), n_classes))
    rng = np.random.default_rng(seed)
    fold = np.empty(len(rows), np.int64)
    for c in range(n_classes):                       # stratified folds
        mine = np.flatnonzero(y == c)
        fold[mine] = rng.permutation(len(mine)) % max(1, folds)
    usable = folds > 1 and np.bincount(y, minlength=n_classes).min() >= 2
    if usable:
        for f in range(folds):
            tr, te = fold != f, fold == f
            if te.any() and tr.any():
                held[te] = _scores(S, Z, rows[tr], y[tr], n_classes, C, extra)[rows[te]]
        t = _temperature(held, y)
        trust = _class_record(held, y, n_classes, _apply_temperature(held, t).max(axis=1))
    else:
        t, trust = 1.0, np.ones(n_classes)
    Pd, Pl = diffuse(S, rows, y, n_classes), _linear(Z, rows, y, n_classes, C, extra)
    P = _apply_temperature(0.5 * Pd + 0.5 * Pl, t)
    pred = P.argmax(axis=1)
    conf = np.minimum(P.max(axis=1), trust[pred])
    # where the graph and the linear classifier disagree the label is a coin toss between
    # them: never "confident"
    agree = (Pd.argmax(axis=1) == pred) & (Pl.argmax(axis=1) == pred)
    conf = np.where(agree, conf, np.minimum(conf, 0.5))
    pred[rows], conf[rows] = y, 1.0
    return classes, pred, conf, P


# ------------------------------------------------------------------------- on a collection

#: default output field: a Classification (image view) or the detections' attributes
#: ``vc_propagated`` and ``vc_propagated_confidence`` (object view)
OUTPUT_FIELD = "vc_propagated"
#: the label tag of labels copied from the propagation by :func:`accept_propagated`
ACCEPTED_TAG = "vc_propagated"


def _items(collection, label_field, patches_field, examples):
    """``(sample ids, item ids, labels or None for the items to label)``."""
    import fiftyone.core.labels as fol

    from . import fields as vcf

    dataset = collection._dataset
    if patches_field:
        if label_field not in (None, patches_field):
            raise ValueError("In object view the labels are the detections' own labels: "
                             f"pass label_field={patches_field!r}")
        lp = vcf.label_list_path(dataset, patches_field)
        sids, lids, labs, tags = collection.values(["id", f"{lp}.id", f"{lp}.label",
                                                    f"{lp}.tags"])
        rows = [(s, i, lab, t or []) for s, ii, ll, tt in zip(sids, lids, labs, tags)
                for i, lab, t in zip(ii or [], ll or [], tt or [])]
        ex_ok = (lambda r: examples in r[3]) if isinstance(examples, str) else None
    else:
        if not label_field or not dataset.has_sample_field(label_field):
            raise ValueError(f"No label field {label_field!r} on dataset {dataset.name!r}")
        doc = getattr(dataset.get_field(label_field), "document_type", None)
        if doc is None or not issubclass(doc, fol.Classification):
            raise ValueError(f"{label_field!r} is not a Classification field: propagation "
                             "fills Classification labels (object view: pass patches_field)")
        sids, labs, tags = collection.values(["id", f"{label_field}.label", "tags"])
        rows = [(s, s, lab, t or []) for s, lab, t in zip(sids, labs, tags)]
        ex_ok = (lambda r: examples in r[3]) if isinstance(examples, str) else None
    if examples is not None and not isinstance(examples, str):   # a view naming the examples
        keep = set(examples.values("id"))
        ex_ok = (lambda r: r[0] in keep)
    labels = [r[2] if (r[2] is not None and (ex_ok is None or ex_ok(r))) else None for r in rows]
    return [r[0] for r in rows], [r[1] for r in rows], labels


def propagate_labels(collection, label_field: str | None = None, *,
                     output_field: str = OUTPUT_FIELD, patches_field: str | None = None,
                     examples=None, classes: list[str] | None = None, model: str | None = None,
                     pretrained: str | None = None, text_prompts: bool = False, k: int = 10,
                     min_examples: int = 1, uri: str | None = None) -> dict:
    """Labels every unlabelled sample (or detection) of ``collection`` from the labelled ones,
    over the kNN graph of the stored embeddings; writes ``output_field``, never ``label_field``.

    Args:
        collection: a dataset or view (its samples or detections are the items)
        label_field: a Classification field, partly filled (object view: the detections)
        output_field: where the result goes: a ``vc_`` Classification field with a confidence
            (object view: the detections' ``<output_field>`` and ``<output_field>_confidence``
            attributes)
        patches_field: object view: the detections' field
        examples: which labels are examples: None = every filled label; a tag name (sample tag
            in image view, label tag in object view); or a view whose samples are the examples
        classes: the classes to expect; each needs an example (or ``text_prompts``)
        model, pretrained: which embeddings (default: the most recent of this view kind)
        text_prompts: also use each class name, embedded by the CLIP text tower, as an
            example (CLIP embeddings only)
        k: neighbours per item in the graph
        min_examples: the least examples per class

    Returns:
        a summary: ``{"labelled": n, "examples": m, "classes": [...], "without_embeddings": k,
        "confident": share ≥ 0.9}`` (items without embeddings are left out)

    Example::

        vc.compute_embeddings(dataset, model="demo")
        vc.propagate_labels(dataset, "ground_truth")     # → vc_propagated on the unlabelled
        batch = vc.review_batch(dataset, "ground_truth", size=50)
    """
    from collections import Counter

    from . import fields as vcf
    from .similarity import latest_embeddings
    from .store import VectorStore

    if not output_field.startswith("vc_"):
        raise ValueError(f"output_field must be a 'vc_' field (yours are never written), "
                         f"not {output_field!r}")
    if output_field == label_field:
        raise ValueError("output_field must differ from label_field")
    dataset = collection._dataset
    if len(collection) == 0:
        raise ValueError("The collection is empty: nothing to label")
    sids, ids, labels = _items(collection, label_field, patches_field, examples)
    if not ids:
        raise ValueError("No items to label in this collection")
    conf = latest_embeddings(dataset, patches_field, model, pretrained)
    store = VectorStore(conf["table"], uri=uri or conf.get("uri"))
    v_ids, vecs, _ = store.vectors(ids)
    have = set(v_ids)
    n_missing = len(ids) - len(have)
    if not have:
        raise ValueError("No embeddings for these items yet: run compute_embeddings on this "
                         "collection first")
    if n_missing:     # e.g. boxes too small to embed, or samples added since: left out
        rows = [j for j, i in enumerate(ids) if i in have]
        sids, ids, labels = ([x[j] for j in rows] for x in (sids, ids, labels))
    counts = Counter(x for x in labels if x is not None)
    wanted = list(classes) if classes else sorted(counts)
    text = None
    if text_prompts:
        if conf.get("embeddings_field"):
            raise ValueError("text_prompts needs CLIP embeddings (these were imported)")
        from .embeddings import embed_text

        text = (embed_text([f"a photo of a {c}" for c in wanted], model=conf["model"],
                           pretrained=conf.get("pretrained")), list(wanted))
    short = [c for c in wanted if counts.get(c, 0) < min_examples and not text_prompts]
    if short or not counts:
        raise ValueError(f"Classes without {min_examples} labelled example(s): "
                         f"{short or wanted}; label a few items of each (or turn on text "
                         "prompts)")
    unknown = sorted(set(counts) - set(wanted))
    if unknown:
        raise ValueError(f"Examples of classes not listed in classes: {unknown}")
    if len(counts) < 2 and not text:
        raise ValueError("Propagation needs examples of at least two classes")
    if text:       # a class with no labelled example gets one from its name
        for c, v in zip(text[1], text[0]):
            if c not in counts:
                labels.append(c)
                vecs = np.vstack([vecs, v[None]])
    unl = [j for j, x in enumerate(labels[:len(ids)]) if x is None]
    cls, pred, cf, _ = propagate(vecs, labels, k=k, text_examples=text)
    if patches_field:
        vals = {output_field: {ids[j]: cls[pred[j]] for j in unl},
                f"{output_field}_confidence": {ids[j]: float(cf[j]) for j in unl}}
        vcf.set_label_values(collection, patches_field, vals, descriptions={
            output_field: "Visual Curation: label propagated from the examples",
            f"{output_field}_confidence": "Visual Curation: confidence of the propagated label"})
    else:
        import fiftyone as fo

        vcf.check_writable(dataset, [output_field])
        if dataset.has_sample_field(output_field):
            collection.set_field(output_field, None).save(output_field)
        values = {sids[j]: fo.Classification(label=cls[pred[j]], confidence=float(cf[j]))
                  for j in unl}
        if not dataset.has_sample_field(output_field):
            dataset.add_sample_field(output_field, fo.EmbeddedDocumentField,
                                     embedded_doc_type=fo.Classification)
        if values:
            dataset.set_values(output_field, values, key_field="id")
        vcf.mark(dataset, output_field, "Visual Curation: label propagated from the examples")
    conf_unl = cf[unl] if unl else np.zeros(0)
    return {"labelled": len(unl), "examples": int(sum(counts.values())), "classes": cls,
            "without_embeddings": n_missing,
            "confident": float((conf_unl >= 0.9).mean()) if len(conf_unl) else 0.0}


def review_batch(collection, label_field: str | None = None, *, size: int = 50,
                 order: str = "least_confident", output_field: str = OUTPUT_FIELD,
                 patches_field: str | None = None):
    """The next batch to review: samples whose ``output_field`` is set and whose label is still
    empty, the least confident first (``order="most_confident"``: the surest first, to accept
    in bulk), as a fixed selection (labelling one of them does not pull another item in). In
    object view, the patches of those detections.

    Example::

        batch = vc.review_batch(dataset, "ground_truth", size=50)
        vc.accept_propagated(batch, "ground_truth")
    """
    from fiftyone import ViewField as F

    if order not in ("least_confident", "most_confident"):
        raise ValueError("order must be 'least_confident' or 'most_confident'")
    desc = order == "most_confident"
    if patches_field:
        todo = F(output_field).exists() & ~F("label").exists()
        patches = collection.filter_labels(patches_field, todo).to_patches(patches_field)
        ids = patches.sort_by(f"{patches_field}.{output_field}_confidence",
                              reverse=desc).limit(size).values("id")
        return patches.select(ids, ordered=True)
    todo = collection.match(F(output_field).exists() & ~F(f"{label_field}.label").exists())
    ids = todo.sort_by(f"{output_field}.confidence", reverse=desc).limit(size).values("id")
    # a fixed selection: labelling one of the batch does not pull another item into it
    return collection.select(ids, ordered=True)


def accept_propagated(collection, label_field: str | None = None, *,
                      output_field: str = OUTPUT_FIELD, patches_field: str | None = None,
                      ids: list[str] | None = None) -> int:
    """Copies the propagated label into ``label_field`` for the samples of ``collection`` (or
    ``ids``) whose label is still empty: a new Classification with the propagated label and
    confidence, tagged ``vc_propagated``. Labels already there are never replaced. In object
    view the detections' empty labels are filled. Returns how many labels were filled.

    Example::

        vc.accept_propagated(vc.review_batch(dataset, "ground_truth"), "ground_truth")
    """
    import fiftyone as fo

    dataset = collection._root_dataset   # a batch of patches has its own
    if patches_field:
        from . import fields as vcf

        lp = vcf.label_list_path(dataset, patches_field)
        if getattr(collection, "_is_patches", False):      # a batch of patches
            want = set(collection.values(f"{patches_field}.id"))
            sids = sorted(set(collection.values("sample_id")))
        else:
            want, sids = None, collection.values("id")
        if ids is not None:
            want = set(ids) if want is None else want & set(ids)
        base = dataset.select(sids, ordered=True)
        n, out = 0, {}
        for sid, dets in zip(base.values("id"), base.values(lp)):
            hit = False
            for d in dets or []:
                p = d.to_dict().get(output_field)
                if d.label is None and p is not None and (want is None or d.id in want):
                    d.label = p
                    d.tags = list(d.tags or []) + [ACCEPTED_TAG]
                    n += 1
                    hit = True
            if hit:
                out[sid] = dets
        if out:
            dataset.select(list(out)).set_values(lp, out, key_field="id")
        return n
    if ids is not None:
        collection = collection.select(list(ids))
    sids, cur, prop = collection.values(["id", label_field, output_field])
    values = {}
    for sid, c, p in zip(sids, cur, prop):
        if p is not None and (c is None or c.label is None):
            values[sid] = fo.Classification(label=p.label, confidence=p.confidence,
                                            tags=[ACCEPTED_TAG])
    if values:
        dataset.select(list(values)).set_values(label_field, values, key_field="id")
    return len(values)


def set_labels(collection, label_field: str, label: str, *, ids: list[str] | None = None) -> int:
    """Gives the samples of ``collection`` (or ``ids``) the label ``label`` in ``label_field``
    (a Classification field): how a rejected propagated label is corrected, so that the next
    :func:`propagate_labels` uses it as an example. Returns the count.

    Example::

        vc.set_labels(dataset, "ground_truth", "sandal", ids=[sample.id])
    """
    import fiftyone as fo

    view = collection.select(list(ids)) if ids is not None else collection
    if not label:
        raise ValueError("Name the label to give")
    sids = view.values("id")
    if sids:
        view._dataset.select(sids).set_values(
            label_field, {s: fo.Classification(label=str(label)) for s in sids},
            key_field="id")
    return len(sids)
