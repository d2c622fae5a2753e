"""A FiftyOne Brain similarity backend over Visual Curation's LanceDB tables.

``compute_embeddings`` registers one Brain similarity run per model and view kind (see
:func:`brain_key_for`), so the App's own tools find our vectors: "sort by similarity" on
selected samples (or patches in object view), the text prompt for CLIP models, and the SDK::

    view = dataset.sort_by_similarity("a photo of a sneaker", k=25, brain_key="vc_demo")
    index = dataset.load_brain_results("vc_demo")
    fob.compute_near_duplicates(dataset, similarity_index=index)

The index reads the embeddings table live: samples added and embedded later, or re-embedded,
are in it without any rewrite. Text prompts are embedded by our own model loader, so they
work for the offline demo model and for local checkpoints. The vectors belong to the
embeddings run: deleting the Brain run leaves them; ``vc.delete_run`` removes both.

Distances are cosine distances (``1 - cosine``) between the L2-normalised vectors. Queries
on the whole index of a table with an ANN index (large tables) use LanceDB's search; every
other query is exact (blocked matrix products over the view's vectors).
"""
from __future__ import annotations

import logging
import re

import numpy as np
from fiftyone.brain.similarity import (DuplicatesMixin, Similarity, SimilarityConfig,
                                       SimilarityIndex)

from .knn import knn_graph, knn_query
from .store import VectorStore

logger = logging.getLogger(__name__)

METHOD = "visual_curation"
#: up to this many vectors a full-index radius query is exact; above, from the kNN graph
EXACT_RADIUS_MAX = 50000
RADIUS_GRAPH_K = 50


def brain_key_for(model_key: str, patches_field: str | None = None) -> str:
    """The documented Brain key of our index: ``vc_<model>`` for images,
    ``vc_<model>_<patches field>`` for objects (non-identifier characters become ``_``).

    Example::

        brain_key_for("demo")                    # "vc_demo"
        brain_key_for("demo", "ground_truth")    # "vc_demo_ground_truth"
    """
    key = re.sub(r"\W+", "_", f"vc_{model_key}" + (f"_{patches_field}" if patches_field else ""))
    return key.strip("_")


class VisualCurationSimilarityConfig(SimilarityConfig):
    """Configuration of a similarity index over one Visual Curation embeddings table.

    Args:
        table_name: the LanceDB table (``vc_<dataset id>__<model>__<kind>``)
        uri: the LanceDB folder or URI (default: Visual Curation's)
        vc_model, vc_pretrained: the model that made the vectors, for text prompts
        metric: ``"cosine"`` (the only one: the vectors are L2-normalised)
        **kwargs: :class:`fiftyone.brain.similarity.SimilarityConfig` arguments
            (``embeddings_field``, ``patches_field``, ``supports_prompts``, ...)
    """

    def __init__(self, table_name: str | None = None, uri: str | None = None,
                 vc_model: str | None = None, vc_pretrained: str | None = None,
                 metric: str = "cosine", **kwargs):
        if metric != "cosine":
            raise ValueError(f"Unsupported metric {metric!r}: Visual Curation's index is cosine")
        super().__init__(**kwargs)
        self.table_name = table_name
        self.uri = uri
        self.vc_model = vc_model
        self.vc_pretrained = vc_pretrained
        self.metric = metric

    @property
    def method(self):
        return METHOD

    @property
    def max_k(self):
        return None

    @property
    def supports_least_similarity(self):
        return True

    @property
    def supported_aggregations(self):
        return ("mean",)


class VisualCurationSimilarity(Similarity):
    """Factory of :class:`VisualCurationSimilarityIndex`."""

    def ensure_requirements(self):
        pass

    def ensure_usage_requirements(self):
        pass

    def initialize(self, samples, brain_key):
        return VisualCurationSimilarityIndex(samples, self.config, brain_key, backend=self)


class _PromptModel:
    """What the Brain needs of a model for prompts: ``embed_prompts`` and a context."""

    def __init__(self, model, pretrained):
        self.model, self.pretrained = model, pretrained

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False

    def embed_prompt(self, prompt):
        return self.embed_prompts([prompt])[0]

    def embed_prompts(self, prompts):
        from .embeddings import embed_text

        prompts = [str(p)[:2000] for p in prompts]
        if not all(p.strip() for p in prompts):
            raise ValueError("Empty text prompt")
        return embed_text(prompts, model=self.model, pretrained=self.pretrained)


class VisualCurationSimilarityIndex(SimilarityIndex, DuplicatesMixin):
    """A Brain similarity index reading a Visual Curation embeddings table (see the module
    docstring). Ids are sample ids, or label ids for an object (patches) index."""

    def __init__(self, samples, config, brain_key, backend=None):
        self._store = None
        self._table_ids = None   # (table version, ids, sample ids)
        self._view_vecs = None   # (table version, ids tuple, vectors)
        SimilarityIndex.__init__(self, samples, config, brain_key, backend=backend)
        DuplicatesMixin.__init__(self)

    # -- the table -----------------------------------------------------------------------
    @property
    def store(self) -> VectorStore:
        if self._store is None:
            if not self.config.table_name:
                raise ValueError("This index names no embeddings table: run compute_embeddings")
            self._store = VectorStore(self.config.table_name, uri=self.config.uri)
        return self._store

    def _version(self):
        try:
            return self.store.table.version
        except FileNotFoundError:
            return None

    def _ids(self):
        ver = self._version()
        if self._table_ids is None or self._table_ids[0] != ver:
            if ver is None:
                ids, sids = [], []
            else:
                t = self.store.read(["id", "sample_id"])
                ids, sids = t.column("id").to_pylist(), t.column("sample_id").to_pylist()
            self._table_ids = (ver, ids, [s or i for s, i in zip(sids, ids)])
        return self._table_ids

    @property
    def is_external(self):
        return True

    @property
    def sample_ids(self):
        _, ids, sids = self._ids()
        return np.array(sids if self.config.patches_field else ids, dtype=object)

    @property
    def label_ids(self):
        if not self.config.patches_field:
            return None
        return np.array(self._ids()[1], dtype=object)

    @property
    def total_index_size(self):
        return self.store.count()

    def _current_ids(self):
        return list(self.current_label_ids if self.config.patches_field
                    else self.current_sample_ids)

    def _current_vectors(self):
        """(ids, vectors) of the active index, in its order (cached per table version)."""
        ids = self._current_ids()
        ver, key = self._version(), tuple(ids)
        if self._view_vecs is None or self._view_vecs[:2] != (ver, key):
            got, vecs, _ = self.store.vectors(ids) if ids else ([], np.zeros((0, 1)), {})
            if len(got) != len(ids):      # rows deleted since the ids were read
                keep = set(got)
                ids = [i for i in ids if i in keep]
                key = tuple(ids)
            self._view_vecs = (ver, key, np.asarray(vecs, np.float32))
        return list(self._view_vecs[1]), self._view_vecs[2]

    def reload(self):
        self._table_ids = None
        self._view_vecs = None
        super().reload()

    # -- index edits (the Brain API; compute_embeddings keeps the table current itself) --
    def add_to_index(self, embeddings, sample_ids, label_ids=None, overwrite=True,
                     allow_existing=True, warn_existing=False, reload=True):
        ids = [str(i) for i in (label_ids if label_ids is not None else sample_ids)]
        existing = set(ids) & set(self._ids()[1])
        if existing and not allow_existing:
            raise ValueError(f"Found {len(existing)} ids (e.g. {next(iter(existing))}) that "
                             "already exist in the index")
        if existing and warn_existing:
            logger.warning("%s %d ids that already exist in the index",
                           "Overwriting" if overwrite else "Skipping", len(existing))
        vecs = np.asarray(embeddings, np.float32)
        keep = [j for j, i in enumerate(ids) if overwrite or i not in existing]
        vecs = vecs[keep] / np.maximum(np.linalg.norm(vecs[keep], axis=1, keepdims=True), 1e-12)
        if keep:
            self.store.create(vecs.shape[1])
            self.store.upsert({"id": [ids[j] for j in keep], "vector": vecs,
                               "sample_id": [str(sample_ids[j]) for j in keep]})
        if reload:
            self.reload()

    def remove_from_index(self, sample_ids=None, label_ids=None, allow_missing=True,
                          warn_missing=False, reload=True):
        if label_ids is None and sample_ids is not None and self.config.patches_field:
            wanted = {str(s) for s in sample_ids}
            _, ids, sids = self._ids()
            label_ids = [i for i, s in zip(ids, sids) if s in wanted]
        ids = [str(i) for i in (label_ids if label_ids is not None else sample_ids or [])]
        missing = set(ids) - set(self._ids()[1])
        if missing and not allow_missing:
            raise ValueError(f"Found {len(missing)} ids (e.g. {next(iter(missing))}) that are "
                             "not in the index")
        if missing and warn_missing:
            logger.warning("Ignoring %d ids that are not in the index", len(missing))
        present = [i for i in ids if i not in missing]
        if present:
            self.store.delete(present)
        if reload:
            self.reload()

    def get_embeddings(self, sample_ids=None, label_ids=None, allow_missing=True,
                       warn_missing=False):
        _, ids, sids = self._ids()
        patches = bool(self.config.patches_field)
        if label_ids is not None and not patches:
            raise ValueError("This index does not support label IDs")
        if label_ids is None and sample_ids is None:
            want = list(ids)
        elif label_ids is not None:
            want = [label_ids] if isinstance(label_ids, str) else list(label_ids)
        elif patches:
            ss = {sample_ids} if isinstance(sample_ids, str) else set(sample_ids)
            want = [i for i, s in zip(ids, sids) if s in ss]
        else:
            want = [sample_ids] if isinstance(sample_ids, str) else list(sample_ids)
        got, vecs, ext = self.store.vectors(want, extra=["sample_id"])
        missing = len(want) - len(got) if (label_ids is not None or not patches) else 0
        if missing and not allow_missing:
            raise ValueError(f"Found {missing} ids that are not in the index")
        if missing and warn_missing:
            logger.warning("Skipping %d ids that are not in the index", missing)
        got_sids = [s or i for s, i in zip(ext["sample_id"], got)]
        return (np.asarray(vecs), np.array(got_sids if patches else got, dtype=object),
                np.array(got, dtype=object) if patches else None)

    def cleanup(self):
        """Nothing to remove: the vectors belong to the embeddings run (``vc.delete_run``
        removes them)."""

    def get_model(self):
        if self._model is None:
            if not self.config.vc_model:
                raise ValueError("This index holds imported vectors: no model embeds prompts")
            self._model = _PromptModel(self.config.vc_model, self.config.vc_pretrained)
        return self._model

    # -- queries -------------------------------------------------------------------------
    def _query(self, query):
        """(query vectors (Q, D) or None, their ids or None, single?)."""
        if query is None:
            return None, None, False
        if isinstance(query, str):
            qids, single = [query], True
        else:
            arr = np.asarray(query)
            if np.issubdtype(arr.dtype, np.number):
                single = arr.ndim == 1
                q = np.atleast_2d(arr).astype(np.float32)
                return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12), None, \
                    single
            qids, single = [str(i) for i in arr.ravel()], False
        got, vecs, _ = self.store.vectors(qids)
        if len(got) != len(qids):
            bad = sorted(set(qids) - set(got))
            raise ValueError(f"Query IDs {bad[:5]} are not in the index (embed them first)")
        return np.asarray(vecs, np.float32), qids, single

    def _whole_table(self):
        return not self.has_view and self.store.has_index()

    def _kneighbors(self, query=None, k=None, reverse=False, aggregation=None,
                    return_dists=False):
        if aggregation not in (None, "mean"):
            raise ValueError(f"Unsupported aggregation {aggregation!r}: only 'mean'")
        q, qids, single = self._query(query)
        if aggregation == "mean" and q is not None:   # one query: the items themselves count
            m = q.mean(axis=0)
            q, qids, single = (m / max(float(np.linalg.norm(m)), 1e-12))[None], None, True
        if q is not None and len(q) == 1 and not reverse and k and self._whole_table():
            hits = self.store.search(q[0], k=int(k) + (1 if qids else 0))
            hits = [(i, d) for i, d in hits if not qids or i != qids[0]][:int(k)]
            return self._format([[i for i, _ in hits]], [[d for _, d in hits]], single,
                                return_dists)
        ids, V = self._current_vectors()
        full = q is None
        if full:
            q, exclude = V, np.arange(len(V))
        else:
            pos = {i: j for j, i in enumerate(ids)}
            exclude = np.array([pos.get(i, -1) for i in qids]) if qids else None
        kk = len(ids) if k is None else min(int(k), len(ids))
        sign = -1.0 if reverse else 1.0
        inds, sims = knn_query(sign * q, V, kk, exclude=exclude)
        rows = [ix[ix >= 0] for ix in inds]
        dists = [1.0 - sign * s[ix >= 0] for ix, s in zip(inds, sims)]
        if full:
            return (rows, dists) if return_dists else rows
        return self._format([[ids[j] for j in r] for r in rows], dists, single, return_dists)

    def _radius_neighbors(self, query=None, thresh=None, return_dists=False):
        thresh = 0.2 if thresh is None else float(thresh)
        q, qids, single = self._query(query)
        ids, V = self._current_vectors()
        full = q is None
        rows, dists = [], []
        if full and len(V) > EXACT_RADIUS_MAX:
            ind, sim = knn_graph(V, RADIUS_GRAPH_K)
            for ix, s in zip(ind, sim):
                ok = (ix >= 0) & (1.0 - s <= thresh)
                rows.append(ix[ok])
                dists.append(1.0 - s[ok])
        else:
            Q = V if full else q
            pos = {i: j for j, i in enumerate(ids)}
            self_at = np.arange(len(V)) if full else \
                np.array([pos.get(i, -1) for i in qids]) if qids else None
            for b in range(0, len(Q), 1024):
                S = Q[b:b + 1024] @ V.T
                for r, s in enumerate(S):
                    ok = 1.0 - s <= thresh
                    if self_at is not None and self_at[b + r] >= 0:
                        ok[self_at[b + r]] = False
                    ix = np.flatnonzero(ok)
                    ix = ix[np.argsort(-s[ix], kind="stable")]
                    rows.append(ix)
                    dists.append(1.0 - s[ix])
        if full:
            return (rows, dists) if return_dists else rows
        return self._format([[ids[j] for j in r] for r in rows], dists, single, return_dists)

    def _format(self, id_rows, dist_rows, single, return_dists):
        """Brain output: (sample ids, label ids[, dists]) per query (unwrapped if single)."""
        if self.config.patches_field:
            _, ids, sids = self._ids()
            sample_of = dict(zip(ids, sids))
            label_ids = [list(r) for r in id_rows]
            sample_ids = [[sample_of.get(i, i) for i in r] for r in id_rows]
        else:
            sample_ids, label_ids = [list(r) for r in id_rows], None
        dists = [[float(d) for d in r] for r in dist_rows]
        if single:
            sample_ids = sample_ids[0]
            label_ids = label_ids[0] if label_ids is not None else None
            dists = dists[0]
        return (sample_ids, label_ids, dists) if return_dists else (sample_ids, label_ids)

    @classmethod
    def _from_dict(cls, d, samples, config, brain_key):
        return cls(samples, config, brain_key)


# -- registration (called by compute_embeddings / import_embeddings / delete_run) ----------
def _ours(dataset, key):
    try:
        return dataset.get_brain_info(key).config.method == METHOD
    except Exception:  # noqa: BLE001 - not a run, or one whose class cannot be loaded
        return False


def register(dataset, conf: dict) -> str | None:
    """Registers (or refreshes) the Brain similarity run of one embeddings run ``conf``
    (its run config: model, pretrained, model_key, patches_field, table, uri, and
    ``embeddings_field`` for imported vectors). A Brain run of the same key that is not ours
    is left alone (None is returned)."""
    dataset = dataset._root_dataset if hasattr(dataset, "_root_dataset") else dataset
    key = brain_key_for(conf["model_key"], conf.get("patches_field"))
    if key in dataset.list_brain_runs() and not _ours(dataset, key):
        logger.warning("Brain run %r exists and is not Visual Curation's: the App's similarity "
                       "tools will not see these embeddings under that key", key)
        return None
    imported = bool(conf.get("embeddings_field"))
    config = VisualCurationSimilarityConfig(
        table_name=conf["table"], uri=conf.get("uri"),
        vc_model=None if imported else conf.get("model"),
        vc_pretrained=None if imported else conf.get("pretrained"),
        patches_field=conf.get("patches_field"), supports_prompts=not imported)
    method = config.build()
    if key in dataset.list_brain_runs():
        dataset.delete_brain_run(key)          # ours: cleanup leaves the table
    method.register_run(dataset, key, overwrite=True, cleanup=False)
    method.save_run_results(dataset, key, method.initialize(dataset, key))
    return key


def unregister_all(dataset) -> list[str]:
    """Removes every Brain run of ours from ``dataset`` (never a user's); returns the keys."""
    keys = [k for k in dataset.list_brain_runs() if _ours(dataset, k)]
    for k in keys:
        dataset.delete_brain_run(k)
    return keys
