"""Visual and text similarity search over the LanceDB tables."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import config as cfg
from . import fields as vcf
from . import runs as vcr
from .embeddings import embed_image, embed_text, embeddings_run_key
from .models import DEMO_MODEL, model_key
from .store import VectorStore, kind_for


def embeddings_runs(dataset, patches_field=None, need_text=False):
    """Run configs of the dataset's embeddings of one view kind, most recent first
    (``need_text``: only those made by a CLIP model, which embeds text and images, not
    imported vectors). The one place that says which embeddings exist."""
    dataset = dataset._dataset
    kind = kind_for(patches_field)
    found = []
    for key in vcr.ours(dataset, vcr.METHOD_EMBEDDINGS):
        conf = vcr.load_config(dataset, key) or {}
        if conf.get("kind") != kind or (need_text and conf.get("embeddings_field")):
            continue
        found.append((dataset.get_run_info(key).timestamp, conf))
    return [c for _, c in sorted(found, key=lambda x: x[0], reverse=True)]


def latest_embeddings(dataset, patches_field=None, model=None, pretrained=None,
                      need_text=False):
    """The embeddings run config to use: the given model's, else the most recent one of this
    view kind (``need_text``: one made by a CLIP model, not imported vectors)."""
    kind = kind_for(patches_field)
    if model is not None:
        key = embeddings_run_key(model_key(model, pretrained), kind)
        conf = vcr.load_config(dataset, key)
        if conf is None:
            raise ValueError(f"No embeddings for model {model!r} on this dataset yet: run "
                             "compute_embeddings (or the 'Compute embeddings' operator) first")
        return conf
    runs = embeddings_runs(dataset, patches_field, need_text)
    if not runs:
        what = "CLIP embeddings" if need_text else "embeddings"
        target = f" of the objects in {patches_field!r}" if patches_field else ""
        raise ValueError(f"No {what}{target} on this dataset yet: run compute_embeddings "
                         "(or the 'Compute embeddings' operator) first")
    return runs[0]


def _query_vector(dataset, conf, text, image, sample_id, box, patches_field):
    model = conf.get("model")
    pretrained = conf.get("pretrained")
    if text is not None:
        if conf.get("embeddings_field"):
            raise ValueError("Text search needs CLIP embeddings, not imported vectors")
        text = str(text)
        if not text.strip():
            raise ValueError("Empty text query")
        return embed_text([text[:2000]], model=model, pretrained=pretrained)[0]
    if image is not None:
        if conf.get("embeddings_field"):
            raise ValueError("Image queries need CLIP embeddings, not imported vectors")
        return embed_image(image, model=model, pretrained=pretrained, box=box)
    if sample_id is not None:
        ids = [sample_id] if isinstance(sample_id, str) else list(sample_id)
        ids = [cfg.check_id(i) for i in ids]
        if box is not None and not patches_field:
            path = dataset[ids[0]].filepath
            return embed_image(path, model=model, pretrained=pretrained, box=box)
        store = VectorStore(conf["table"], uri=conf.get("uri"))
        _, vecs, _ = store.vectors(ids)
        if not len(vecs):
            raise ValueError("The query sample has no embedding (see its vc_error, or run "
                             "compute_embeddings)")
        q = vecs.mean(axis=0)
        return q / max(float(np.linalg.norm(q)), 1e-12)
    raise ValueError("Give one of text=, image= or sample_id=")


def _nearest(sample_collection, conf, q, k, patches_field=None, query_ids=()):
    """``[(id, cosine distance)]`` of the ``k`` items of ``sample_collection`` nearest to the
    query vector ``q`` (``query_ids`` left out)."""
    dataset = sample_collection._dataset
    store = VectorStore(conf["table"], uri=conf.get("uri"))
    query_ids = set(query_ids)
    k = int(k)
    whole = sample_collection is dataset or not getattr(sample_collection, "_stages", [1])
    if patches_field:
        list_path = vcf.label_list_path(dataset, patches_field)
        ids = [i for sub in sample_collection.values(f"{list_path}.id") for i in (sub or [])]
    else:
        ids = sample_collection.values("id")
    if whole and store.has_index():
        hits = store.search(q, k=k + len(query_ids))
        return [(i, d) for i, d in hits if i not in query_ids][:k]
    ids_, vecs, _ = store.vectors(ids)
    if not len(ids_):
        return []
    sims = vecs @ q.astype(np.float32)
    order = np.argsort(-sims)
    out = []
    for j in order:
        if ids_[j] in query_ids:
            continue
        out.append((ids_[j], float(1.0 - sims[j])))
        if len(out) >= k:
            break
    return out


def _conf(dataset, patches_field, model, pretrained, uri, clip):
    conf = latest_embeddings(dataset, patches_field, model, pretrained, need_text=clip)
    return dict(conf, uri=uri) if uri else conf


def similar_ids(sample_collection, text=None, image=None, sample_id=None, k=50, box=None,
                patches_field=None, model=None, pretrained=None, uri=None,
                exclude_query=False):
    """``[(id, cosine distance)]`` of the ``k`` nearest samples (or object label ids)."""
    dataset = sample_collection._dataset
    conf = _conf(dataset, patches_field, model, pretrained, uri,
                 clip=text is not None or image is not None)
    q = _query_vector(dataset, conf, text, image, sample_id, box, patches_field)
    query_ids = ()
    if exclude_query and sample_id is not None:
        query_ids = [sample_id] if isinstance(sample_id, str) else list(sample_id)
    return _nearest(sample_collection, conf, q, k, patches_field, query_ids)


@dataclass(frozen=True)
class SearchResult:
    """What :func:`search` found. ``view``: the results, nearest first; ``hits``: ``[(id,
    cosine similarity)]`` in that order (object label ids in object view); ``quality``: how
    good the best match is on this dataset (:class:`~visual_curation.core.match.MatchQuality`;
    None for queries made of the dataset's own items); ``brain_key``: the Brain similarity run
    the view sorts through (None: the view selects the hits in order)."""

    view: object
    hits: list
    quality: object = None
    brain_key: str | None = None

    def __len__(self):
        return len(self.hits)

    @property
    def best(self) -> float | None:
        return self.hits[0][1] if self.hits else None


def search(sample_collection, *, text: str | None = None, image=None,
           sample_id: str | Sequence[str] | None = None, k: int = 50,
           box: Sequence[float] | None = None, patches_field: str | None = None,
           model: str | None = None, pretrained: str | None = None, uri: str | None = None,
           judge: bool = True) -> SearchResult:
    """Read-only similarity search: the ``k`` nearest items of ``sample_collection`` to one
    query (as :func:`find_similar`), with their similarities and, for a text prompt, an
    uploaded image or a region (``judge``), how good the best match is on this dataset. No
    sample is written: a text or sample query on images sorts through the dataset's Brain
    similarity index (the App's own similarity sort, shown in its view bar), other queries
    select the hits in order.

    Example::

        import visual_curation as vc

        res = vc.search(dataset, text="a photo of a sneaker", k=25)
        res.view, res.hits[0], res.quality.good, res.quality.message("a photo of a sneaker")
    """
    from . import match
    from .brain_index import brain_key_for

    dataset = sample_collection._dataset
    clip = text is not None or image is not None
    conf = _conf(dataset, patches_field, model, pretrained, uri, clip)
    q = _query_vector(dataset, conf, text, image, sample_id, box, patches_field)
    hits = [(i, 1.0 - d) for i, d in _nearest(sample_collection, conf, q, k, patches_field)]
    ids = [i for i, _ in hits]
    quality = None
    if judge and hits and not patches_field:
        if text is not None:
            quality = match.text_match(sample_collection, conf, q, best=hits[0][1])
        elif image is not None or box is not None:
            quality = match.image_match(sample_collection, conf, q, best=hits[0][1])
    key = brain_key_for(conf["model_key"], patches_field) if conf.get("model_key") else None
    query = text if text is not None else (
        None if box is not None or sample_id is None else
        ([sample_id] if isinstance(sample_id, str) else list(sample_id)))
    if (key and query is not None and not patches_field and not uri
            and key in dataset.list_brain_runs()):
        view = sample_collection.sort_by_similarity(query, k=int(k), brain_key=key)
        return SearchResult(view, hits, quality, key)
    if patches_field:
        view = sample_collection.to_patches(patches_field).select(ids, ordered=True)
    else:
        view = sample_collection.select(ids, ordered=True)
    return SearchResult(view, hits, quality, None)


def find_similar(sample_collection, *, text: str | None = None, image=None,
                 sample_id: str | Sequence[str] | None = None, k: int = 50,
                 box: Sequence[float] | None = None, patches_field: str | None = None,
                 model: str | None = None, pretrained: str | None = None,
                 dist_field: str | None = None, uri: str | None = None):
    """A view of the ``k`` most similar samples (or object patches), nearest first.

    Exactly one query: ``text`` (a prompt), ``image`` (path or PIL image; ``box`` crops it),
    ``sample_id`` (one id or a list: their mean vector; with ``box``, a region of that sample).
    ``model``/``pretrained``: whose embeddings (default: the most recent ones; text needs a
    CLIP model's). ``dist_field``: also write the cosine distance on each returned sample (a
    ``vc_`` field); without it nothing is written. :func:`search` also gives the
    similarities and how good the best match is, and never writes.

    Example::

        import visual_curation as vc

        view = vc.find_similar(dataset, text="a photo of a sneaker", k=25, model="demo")
        view = vc.find_similar(dataset, sample_id=dataset.first().id, k=10)
    """
    hits = similar_ids(sample_collection, text=text, image=image, sample_id=sample_id, k=k,
                       box=box, patches_field=patches_field, model=model,
                       pretrained=pretrained, uri=uri)
    ids = [i for i, _ in hits]
    if patches_field:
        patches = sample_collection.to_patches(patches_field)
        pids, lids = patches.values(["id", f"{patches_field}.id"])
        by_label = dict(zip(lids, pids))
        order = [by_label[i] for i in ids if i in by_label]
        view = patches.select(order, ordered=True)
    else:
        view = sample_collection.select(ids, ordered=True)
    if dist_field:
        dataset = sample_collection._dataset
        if patches_field:
            vcf.set_label_values(sample_collection, patches_field, {dist_field: dict(hits)})
        else:
            vcf.set_sample_values_by_id(dataset, dist_field, dict(hits),
                                        description="Visual Curation: cosine distance to the "
                                                    "last similarity query")
    return view


__all__ = ["find_similar", "search", "SearchResult", "similar_ids", "latest_embeddings",
           "embeddings_runs", "DEMO_MODEL"]
