"""The embedding map: a 2-D layout of our LanceDB vectors (UMAP, or PCA), registered as a
FiftyOne Brain visualization run, so that the App's Embeddings panel draws it, colours it by any
field (``vc_cluster_<level>``) and turns a lasso into a grid filter.

The points are ours (``compute_visualization(points=...)``: method ``"manual"`` in the Brain's
records); the vectors never go through the Brain. Large inputs are mapped by fitting the reducer
on a random sample of ``fit_sample`` vectors and transforming the rest in chunks, so the time and
memory grow linearly past the sample. ``delete_run`` removes the brain runs made here.
"""
from __future__ import annotations

import logging
import re
import time
import warnings
from dataclasses import dataclass

import numpy as np

from . import fields as vcf
from . import runs as vcr
from .similarity import latest_embeddings
from .store import VectorStore, kind_for

logger = logging.getLogger(__name__)

METHOD_MAP = "visual_curation.embedding_map"
METHODS = ("auto", "umap", "pca")
#: UMAP is fitted on at most this many vectors; the rest are transformed (``fit_sample``)
FIT_SAMPLE = 25_000
#: ``method="auto"`` uses PCA above this many points (bench/RESULTS.md, "Embedding map": on 2
#: busy cores UMAP maps 100k points end to end in ~2.5 min and 1M in ~6 min (fit on the sample,
#: the rest placed), PCA maps 1M in ~30 s)
AUTO_PCA_ABOVE = 1_000_000
#: PCA is fitted on at most this many vectors, the rest projected
PCA_FIT_SAMPLE = 200_000
#: UMAP runs on the vectors reduced to this many PCA axes (then re-normalised)
REDUCED_DIMS = 64
CHUNK = 20_000


@dataclass
class EmbeddingMap:
    """What one ``compute_embedding_map`` call made."""
    brain_key: str
    method: str          # "umap" or "pca": the one used
    points: int          # points on the map
    fitted_on: int       # vectors the reducer was fitted on (the rest were transformed)
    missing: int         # items of the collection without an embedding (not on the map)
    model: str
    kind: str
    seconds: float = 0.0

    def as_dict(self):
        return dict(self.__dict__)

    def __str__(self):
        fit = "" if self.fitted_on >= self.points else f" (fitted on {self.fitted_on:,})"
        miss = f", {self.missing:,} without embeddings left out" if self.missing else ""
        return (f"{self.points:,} points by {self.method.upper()}{fit}{miss} in "
                f"{self.seconds:.1f}s → brain run {self.brain_key!r}")


def map_brain_key(patches_field: str | None = None) -> str:
    """The default brain key: ``vc_map`` (images), ``vc_map_<patches field>`` (objects)."""
    key = "vc_map" + (f"_{patches_field}" if patches_field else "")
    return re.sub(r"[^A-Za-z0-9_]+", "_", key)


def _record_key(brain_key):
    return vcr.run_key("vc_embedding_map", brain_key)


def map_runs(dataset) -> list[dict]:
    """The records of the maps made here (each with its ``brain_key``), newest first."""
    dataset = dataset._dataset
    found = []
    for key in vcr.ours(dataset, METHOD_MAP):
        conf = vcr.load_config(dataset, key) or {}
        if conf.get("brain_key"):
            found.append((dataset.get_run_info(key).timestamp, conf))
    return [c for _, c in sorted(found, key=lambda x: x[0], reverse=True)]


def delete_maps(dataset) -> list[str]:
    """Deletes the brain runs of the maps made here (their records go with ``delete_run``);
    returns their brain keys."""
    dataset = dataset._dataset
    brain_keys = set(dataset.list_brain_runs())
    gone = []
    for conf in map_runs(dataset):
        if conf["brain_key"] in brain_keys:
            dataset.delete_brain_run(conf["brain_key"])
            gone.append(conf["brain_key"])
    return gone


def _item_ids(collection, patches_field):
    """The ids to map: sample ids, or the label ids of ``patches_field``."""
    if patches_field:
        path = vcf.label_list_path(collection._root_dataset, patches_field)
        if getattr(collection, "_is_patches", False):
            return [i for i in collection.values(f"{patches_field}.id") if i]
        return [i for sub in collection.values(f"{path}.id") for i in (sub or [])]
    if getattr(collection, "_is_patches", False):
        raise ValueError("This is a patches view: pass patches_field=<its Detections field>")
    return collection.values("id")


class _Steps:
    """One FiftyOne progress bar per step (``pb.vc_step`` names it for the operators)."""

    def __init__(self, progress, names):
        self.progress, self.names = progress, names

    def bar(self, i, total):
        import fiftyone.core.utils as fou

        pb = fou.ProgressBar(total=max(int(total), 1), progress=self.progress,
                             iters_str="points", start_msg=f"Map {i + 1}/{len(self.names)}: "
                                                           f"{self.names[i]}")
        pb.vc_step = (i, len(self.names), self.names[i])
        return pb


def _sample(n, k, seed):
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _umap_fit(x, n_neighbors, min_dist):
    """UMAP of the (normalised, reduced) rows of ``x`` on our exact cosine k-NN graph (UMAP's
    own neighbour search and its compilation are skipped)."""
    from .knn import knn

    k = int(min(n_neighbors, len(x) - 1))
    idx, sims = knn(x, k - 1)
    idx = np.concatenate([np.arange(len(x))[:, None], idx], axis=1)
    dists = np.concatenate([np.zeros((len(x), 1), np.float32),
                            np.clip(1.0 - sims, 0.0, 2.0)], axis=1).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=k, min_dist=float(min_dist),
                            metric="cosine", precomputed_knn=(idx, dists, None),
                            low_memory=True)
        return reducer.fit_transform(x).astype(np.float32)


def _place(queries, base, base_points, k=10):
    """Positions of ``queries`` on a fitted map: the average of their ``k`` nearest fitted
    points' positions, weighted by a kernel of the cosine distance scaled per query (as UMAP
    places new points before refining them)."""
    import torch                                # its top-k is ~4x numpy's argpartition here

    k = min(k, len(base))
    bt = torch.from_numpy(np.ascontiguousarray(base, dtype=np.float32))
    idx = np.empty((len(queries), k), np.int64)
    sims = np.empty((len(queries), k), np.float32)
    for s in range(0, len(queries), 4096):
        top = torch.topk(torch.from_numpy(np.ascontiguousarray(
            queries[s:s + 4096], dtype=np.float32)) @ bt.T, k, dim=1)
        sims[s:s + 4096], idx[s:s + 4096] = top.values.numpy(), top.indices.numpy()
    d = 1.0 - sims
    scale = np.maximum(d.mean(axis=1, keepdims=True) - d[:, :1], 1e-6)
    w = np.exp(-(d - d[:, :1]) / scale)
    w /= w.sum(axis=1, keepdims=True)
    return np.einsum("qk,qkc->qc", w, base_points[idx]).astype(np.float32)


def _reduce(vecs, method, fit_sample, n_neighbors, min_dist, seed, steps):
    """``(points (N, 2) float32, fitted_on, method used)``: PCA (2 axes, fitted on a sample),
    or UMAP fitted on a sample of ``fit_sample`` rows (reduced to ``REDUCED_DIMS`` by PCA
    first) and the other rows placed by their nearest fitted neighbours."""
    from .knn import normalize, pca, project

    n = len(vecs)
    if n < 3:
        return np.zeros((n, 2), np.float32), n, "pca"
    if method == "umap" and n <= n_neighbors + 1:
        method = "pca"                          # too few points for a neighbour graph
    fit_at = _sample(n, fit_sample if method == "umap" else PCA_FIT_SAMPLE, seed)
    with steps.bar(1, len(fit_at)) as pb:
        mean, comps = pca(vecs, 2 if method == "pca" else REDUCED_DIMS, sample=PCA_FIT_SAMPLE,
                          seed=seed)
        if method == "pca":
            pb.set_iteration(len(fit_at))
            out = np.empty((n, 2), np.float32)
        else:
            red = normalize(project(vecs, mean, comps))
            base = red[fit_at]
            fitted = _umap_fit(base, n_neighbors, min_dist)
            pb.set_iteration(len(fit_at))
    rest = np.arange(n) if method == "pca" else np.setdiff1d(np.arange(n), fit_at,
                                                              assume_unique=True)
    with steps.bar(2, len(rest)) as pb:
        if method == "umap":
            out = np.empty((n, 2), np.float32)
            out[fit_at] = fitted
        for s in range(0, len(rest), CHUNK):
            part = rest[s:s + CHUNK]
            if method == "pca":
                out[part] = project(vecs[part], mean, comps)
            else:
                out[part] = _place(red[part], base, fitted)
            pb.set_iteration(s + len(part))
    return np.nan_to_num(out), len(fit_at), method


def compute_embedding_map(sample_collection, *, method: str = "auto",
                          brain_key: str | None = None, patches_field: str | None = None,
                          model: str | None = None, pretrained: str | None = None,
                          fit_sample: int = FIT_SAMPLE, n_neighbors: int = 15,
                          min_dist: float = 0.1, seed: int = 51, overwrite: bool = False,
                          progress=None, uri: str | None = None) -> EmbeddingMap:
    """A 2-D map of the collection's embeddings (images, or the objects of
    ``patches_field``), stored as a FiftyOne Brain visualization run that the App's Embeddings
    panel opens (colour it by ``vc_cluster_<level>``; a lasso filters the grid).

    Args:
        method: ``"umap"`` (cosine UMAP), ``"pca"``, or ``"auto"``: UMAP up to
            ``AUTO_PCA_ABOVE`` points, PCA above
        brain_key: the brain run's key (default ``vc_map``, ``vc_map_<patches_field>``); a
            map made here under the same key is replaced
        patches_field: map the objects of this Detections field (the crops embedded with
            ``compute_embeddings(..., patches_field=...)``)
        model, pretrained: whose embeddings (default: the most recent ones of this view kind)
        fit_sample: UMAP is fitted on at most this many random vectors, the rest transformed
        n_neighbors, min_dist: UMAP's parameters
        seed: the random sample's seed (UMAP itself runs in parallel, not seeded)
        overwrite: replace a brain run of that key that was not made here
        progress: None/True/False or a FiftyOne progress callback (``fo.report_progress``)

    Returns:
        an :class:`EmbeddingMap` (``brain_key``, ``method`` used, ``points``, ``seconds``...)

    Example::

        import visual_curation as vc

        m = vc.compute_embedding_map(dataset, method="umap")
        results = dataset.load_brain_results(m.brain_key)   # results.points: (N, 2)
    """
    import fiftyone.brain as fob

    t0 = time.time()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if int(fit_sample) < 100:
        raise ValueError("fit_sample must be at least 100")
    dataset = sample_collection._root_dataset
    if patches_field is None and getattr(sample_collection, "_is_patches", False):
        patches_field = sample_collection.patches_field
    brain_key = brain_key or map_brain_key(patches_field)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", brain_key):
        raise ValueError(f"brain_key must be a Python identifier, not {brain_key!r}")
    ours = {c["brain_key"] for c in map_runs(dataset)}
    if (brain_key in dataset.list_brain_runs() and brain_key not in ours
            and not overwrite):
        raise ValueError(f"The dataset already has a brain run {brain_key!r} that Visual "
                         "Curation did not make: choose another brain_key, or overwrite=True")
    conf = latest_embeddings(dataset, patches_field, model, pretrained)
    store = VectorStore(conf["table"], uri=uri or conf.get("uri"))
    steps = _Steps(progress, ["read vectors", "fit", "place the rest"])

    want = _item_ids(sample_collection, patches_field)
    with steps.bar(0, len(want)) as pb:
        ids, vecs, _ = store.vectors(want, dtype=np.float16)
        pb.set_iteration(len(want))
    if not len(ids):
        raise ValueError("None of these items has an embedding: run compute_embeddings first")
    used = "umap" if method == "auto" and len(ids) <= AUTO_PCA_ABOVE else (
        "pca" if method == "auto" else method)
    points, fitted_on, used = _reduce(vecs, used, int(fit_sample), n_neighbors, min_dist,
                                      seed, steps)
    del vecs

    if brain_key in dataset.list_brain_runs():
        dataset.delete_brain_run(brain_key)
    target = dataset if getattr(sample_collection, "_is_patches", False) else sample_collection
    fob.compute_visualization(target, patches_field=patches_field, brain_key=brain_key,
                              points={i: p for i, p in zip(ids, points.astype(np.float64))})
    result = EmbeddingMap(brain_key=brain_key, method=used, points=len(ids),
                          fitted_on=int(fitted_on), missing=len(want) - len(ids),
                          model=conf.get("model") or "", kind=kind_for(patches_field),
                          seconds=round(time.time() - t0, 3))
    vcr.save(dataset, _record_key(brain_key), METHOD_MAP,
             dict({k: v for k, v in result.as_dict().items() if k != "method"},
                  map_method=used, requested_method=method, patches_field=patches_field,
                  table=conf["table"], fit_sample=int(fit_sample)))
    logger.info("Embedding map: %s", result)
    return result


__all__ = ["compute_embedding_map", "delete_maps", "map_brain_key", "map_runs", "EmbeddingMap"]
