"""CLIP embeddings into LanceDB: incremental, object crops, bring-your-own vectors, robust.

``compute_embeddings`` embeds only what is new or changed since the last call (file size+mtime,
then the content hash when the file was merely touched), removes rows of samples deleted from the
dataset and reports broken files on the samples' ``vc_error``. The work itself runs on one of two
engines: in this process (:mod:`.embed_local`, the default) or on a Ray cluster
(:mod:`.embed_ray`); both write the same table.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

import numpy as np

from . import config as cfg
from . import embed_local
from . import fields as vcf
from . import images as vci
from . import runs as vcr
from .models import DEFAULT_MODEL, DEFAULT_PRETRAINED, load_model, model_dim, model_key
from .store import VectorStore, kind_for

logger = logging.getLogger(__name__)

ERROR_DESCRIPTION = "Visual Curation: why this sample (or object) could not be analysed"


@dataclass
class EmbeddingsRun:
    """What one ``compute_embeddings`` call did (also stored as the run record's results)."""
    model: str
    table: str
    uri: str
    kind: str
    total: int = 0
    embedded: int = 0
    unchanged: int = 0
    touched: int = 0
    removed: int = 0
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0
    error_examples: dict = field(default_factory=dict)
    engine: str = "local"
    #: Ray only: the actors, and the seconds they spent reading, embedding and writing (summed)
    workers: int = 0
    busy_seconds: float = 0.0

    def as_dict(self):
        return dict(self.__dict__)

    def __str__(self):
        return (f"{self.embedded} embedded, {self.unchanged} unchanged, {self.touched} touched "
                f"(same content), {self.removed} removed, {self.errors} errors, {self.skipped} "
                f"skipped, in {self.seconds:.1f}s → {self.table}")


def embeddings_run_key(model_key_, kind):
    return vcr.run_key("vc_embeddings", model_key_, kind)


def _check_collection(collection):
    if collection.media_type == "video":
        raise ValueError("This is a video dataset: extract its core frames first with "
                         "visual_curation.extract_core_frames(...) and embed those.")
    if collection.media_type not in ("image", "group", None) and collection.media_type:
        raise ValueError(f"Unsupported media type {collection.media_type!r}: images only")


def _units(collection, patches_field, existing):
    """Builds the work units and the full list of item ids in the target collection."""
    if patches_field:
        list_path = vcf.label_list_path(collection._dataset, patches_field)
        sids, paths, ids, boxes = collection.values(
            ["id", "filepath", f"{list_path}.id", f"{list_path}.bounding_box"])
    else:
        sids, paths = collection.values(["id", "filepath"])
        ids, boxes = None, None
    units, all_ids = [], []
    for j, (sid, path) in enumerate(zip(sids, paths)):
        fp = vci.file_fingerprint(path)
        u = embed_local.Unit(sid, path, fp)
        if patches_field:
            for lid, box in zip(ids[j] or [], boxes[j] or []):
                all_ids.append(lid)
                box_fp = None if fp is None else f"{fp}:{','.join(f'{v:.5f}' for v in box)}"
                prev = existing.get(lid)
                if prev is None or prev[0] != box_fp or box_fp is None:
                    u.items.append((lid, list(box), prev[1] if prev else None, box_fp))
        else:
            all_ids.append(sid)
            prev = existing.get(sid)
            if prev is None or prev[0] != fp or fp is None:
                u.items.append((sid, None, prev[1] if prev else None, fp))
        if u.items:
            units.append(u)
    return units, all_ids



def compute_embeddings(sample_collection, *, model: str = DEFAULT_MODEL,
                       pretrained: str | None = DEFAULT_PRETRAINED,
                       patches_field: str | None = None, batch_size: int = 32,
                       num_workers: int | None = None, device: str = "auto", progress=None,
                       embeddings_field: str | None = None, uri: str | None = None,
                       wait: float = 0.0, engine: str = "local", ray_address: str | None = None,
                       **options) -> "EmbeddingsRun":
    """Embeds the images (or object crops) of ``sample_collection`` into LanceDB.

    Args:
        sample_collection: a FiftyOne dataset or view of images
        model: an open_clip architecture (``"ViT-B-32"``…) or ``"demo"`` (offline model)
        pretrained: open_clip pretrained tag, or a local checkpoint path
        patches_field: a ``Detections`` field: embed each box crop, keyed by label id
        embeddings_field: import the vectors already stored in this sample field instead
        batch_size: images per forward pass
        num_workers: decoding threads (default: number of CPU cores); with ``engine="ray"``,
            the number of Ray actors (default: one per GPU of the cluster, else one per CPU)
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``…
        progress: None/True/False or a FiftyOne progress callback (``fo.report_progress``)
        uri: LanceDB URI (default: see :mod:`visual_curation.core.config`)
        **options: ``padding`` (extra context around each box, as a share of the box size,
            default 0.1), ``min_box_size`` (boxes smaller than this many pixels are skipped
            with a reason, default 8), ``write_every`` (rows per LanceDB commit, default 1024;
            each commit survives a crash), ``overwrite`` (allow replacing a user's own
            ``vc_error`` field)
        wait: seconds to wait for another run on the same dataset before raising
            :class:`~visual_curation.core.locks.RunLockedError`
        engine: ``"local"`` (this process) or ``"ray"``: Ray actors read, decode and embed the
            files (one model load per actor, a GPU each where the cluster has GPUs) and write
            Lance fragments that this process commits in one commit (see
            :mod:`visual_curation.core.embed_ray`); needs the ``[ray]`` extra
        ray_address: the Ray cluster to use (``"auto"``, ``"ray://host:10001"``,
            ``"127.0.0.1:6379"``); None starts a local Ray on this machine

    Returns:
        an :class:`EmbeddingsRun` with the counts (also saved as a run on the dataset)

    Example::

        import visual_curation as vc

        run = vc.compute_embeddings(dataset, model="demo")     # offline model
        run.embedded, run.errors                               # counts of this call
        vc.compute_embeddings(dataset, model="demo")           # again: embeds nothing new
    """
    from .locks import run_lock

    with run_lock(sample_collection._dataset, "embeddings", wait=wait):
        return _compute_embeddings(
            sample_collection, model=model, pretrained=pretrained, patches_field=patches_field,
            embeddings_field=embeddings_field, batch_size=batch_size, num_workers=num_workers,
            device=device, progress=progress, uri=uri, engine=engine, ray_address=ray_address,
            **options)


def _compute_embeddings(sample_collection, model=DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED,
                       patches_field=None, embeddings_field=None, batch_size=32,
                       num_workers=None, device="auto", progress=None, uri=None, engine="local",
                       ray_address=None, padding=0.1, min_box_size=8, write_every=1024,
                       overwrite=False):
    t0 = time.time()
    _check_collection(sample_collection)
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', not {engine!r}")
    dataset = sample_collection._dataset
    kind = kind_for(patches_field)
    if embeddings_field:
        return import_embeddings(sample_collection, embeddings_field, uri=uri,
                                 patches_field=patches_field)
    vcf.check_writable(dataset, [cfg.ERROR_FIELD], overwrite=overwrite)

    key = model_key(model, pretrained)
    if engine == "ray":   # the Ray workers load the model; this process only needs its size
        from .embed_ray import require_ray

        require_ray()
        lm, dim = None, model_dim(model, pretrained)
    else:
        lm = load_model(model, pretrained, device=device)
        dim = lm.dim
    store = VectorStore.for_dataset(dataset, key, kind, uri=uri)
    store.create(dim)
    existing = store.fingerprints()
    units, target_ids = _units(sample_collection, patches_field, existing)
    summary = EmbeddingsRun(model=key, table=store.name, uri=store.uri, kind=kind,
                            total=len(target_ids))

    # rows of samples/objects that no longer exist anywhere in the dataset
    if patches_field:
        list_path = vcf.label_list_path(dataset, patches_field)
        alive = {i for sub in dataset.values(f"{list_path}.id") for i in (sub or [])}
    else:
        alive = set(dataset.values("id"))
    stale = [i for i in existing if i not in alive]
    if stale:
        store.delete(stale)
        summary.removed = len(stale)

    n_todo = sum(len(u.items) for u in units)
    summary.unchanged = len(target_ids) - n_todo
    iters_str = "objects" if patches_field else "images"
    if engine == "ray":
        from . import embed_ray

        res = embed_ray.embed_units(
            units, store=store, model=model, pretrained=pretrained, device=device,
            batch_size=batch_size, padding=padding, min_box_size=min_box_size,
            ray_address=ray_address, num_workers=num_workers, rows_per_fragment=write_every,
            progress=progress, iters_str=iters_str, start_msg=f"Embedding with {key} on Ray")
        embed_ray.commit(store, res.fragments, [i for i in res.ok_ids if i in existing])
        if res.same_ids:
            store.set_fingerprints(res.same_ids, res.same_fps)
        summary.embedded, summary.touched = res.embedded, len(res.same_ids)
        summary.engine, summary.workers = "ray", res.workers
        summary.busy_seconds = round(res.busy_seconds, 3)
        errors, skipped, ok_samples = res.errors, res.skipped, res.ok_samples
    else:
        errors, skipped, ok_samples = embed_local.embed_units(
            units, lm=lm, store=store, existing=existing, summary=summary,
            batch_size=batch_size, num_workers=num_workers, padding=padding,
            min_box_size=min_box_size, write_every=write_every, progress=progress,
            iters_str=iters_str, start_msg=f"Embedding with {key}")

    summary.errors = len(errors)
    summary.skipped = len(skipped)
    summary.error_examples = dict(list(errors.items())[:20])
    # failed samples lose their stale vectors so analyses never use outdated content
    failed_ids = [i for i in errors if i in existing] if not patches_field else []
    if failed_ids:
        store.delete(failed_ids)
    _write_errors(sample_collection, dataset, errors, ok_samples, skipped, patches_field, overwrite)
    store.compact()
    store.ensure_index()
    summary.seconds = round(time.time() - t0, 3)
    _save_run(dataset, dict(model=model, pretrained=str(pretrained) if pretrained else None,
                            model_key=key, patches_field=patches_field, table=store.name,
                            kind=kind, uri=store.uri, dim=int(dim)), summary)
    if errors:
        logger.warning("%d of %d files could not be embedded; see the samples' %s field",
                       len(errors), len(target_ids), cfg.ERROR_FIELD)
    logger.info("compute_embeddings: %s", summary)
    return summary


def _save_run(dataset, conf, summary):
    """The embeddings run record, and the Brain similarity run over its table (so the App's
    own similarity tools see the vectors; see :mod:`.brain_index`)."""
    vcr.save(dataset, embeddings_run_key(conf["model_key"], conf["kind"]),
             vcr.METHOD_EMBEDDINGS, conf, results=summary.as_dict())
    from . import brain_index

    try:
        brain_index.register(dataset, conf)
    except Exception as e:  # noqa: BLE001 - the vectors are stored; only the App's tools miss them
        logger.warning("Could not register the Brain similarity run: %s", e)


def _write_errors(collection, dataset, errors, ok_samples, skipped, patches_field, overwrite):
    has_field = dataset.has_sample_field(cfg.ERROR_FIELD)
    if errors or has_field:
        mapping = {sid: None for sid in ok_samples if sid not in errors}
        mapping.update(errors)
        if not has_field and not errors:
            return
        vcf.set_sample_values_by_id(dataset, cfg.ERROR_FIELD, mapping,
                                    description=ERROR_DESCRIPTION, overwrite=overwrite)
    if patches_field and skipped:
        vcf.set_label_values(collection, patches_field, {cfg.ERROR_FIELD: skipped},
                             descriptions={cfg.ERROR_FIELD: ERROR_DESCRIPTION},
                             overwrite=overwrite)


def import_embeddings(sample_collection, embeddings_field: str | None = None, *,
                      uri: str | None = None, patches_field: str | None = None,
                      embeddings=None, name: str = "embeddings") -> "EmbeddingsRun":
    """Bring-your-own vectors: copies ``embeddings_field`` (on samples, or on each detection of
    ``patches_field``) into a LanceDB table keyed ``field-<name>``, L2-normalised.

    Or, like the Brain's ``embeddings=`` argument: ``embeddings`` is an ``(N, D)`` array with
    one row per sample of ``sample_collection``, in its order (rows of NaN are skipped); the
    table is keyed ``array-<name>``. Later analyses use the most recent embeddings.

    Example::

        import numpy as np
        import visual_curation as vc

        vectors = np.random.default_rng(0).normal(size=(len(dataset), 64))
        vc.import_embeddings(dataset, embeddings=vectors, name="my model")
        vc.analyze(dataset, analyses=["duplicates", "uniqueness"])
    """
    t0 = time.time()
    dataset = sample_collection._dataset
    kind = kind_for(patches_field)
    if (embeddings is None) == (embeddings_field is None):
        raise ValueError("Give either embeddings_field (a field of vectors) or embeddings "
                         "(an array with one row per sample)")
    key = f"field-{embeddings_field}" if embeddings is None else \
        f"array-{re.sub(r'[^A-Za-z0-9_.-]+', '_', str(name))[:64]}"
    if embeddings is not None:
        if patches_field:
            raise ValueError("embeddings= takes one row per sample; for objects store the "
                             "vectors on the detections and pass embeddings_field")
        arr = np.asarray(embeddings, dtype=np.float32)
        sids, paths = sample_collection.values(["id", "filepath"])
        if arr.ndim != 2 or len(arr) != len(sids):
            raise ValueError(f"embeddings must be (N, D) with N = {len(sids)} samples in the "
                             f"collection's order, got shape {arr.shape}")
        rows = [(sid, sid, p, None if not np.isfinite(v).all() else v)
                for sid, p, v in zip(sids, paths, arr)]
    elif patches_field:
        list_path = vcf.label_list_path(dataset, patches_field)
        sids, paths, lids, vals = sample_collection.values(
            ["id", "filepath", f"{list_path}.id", f"{list_path}.{embeddings_field}"])
        rows = [(lid, sid, p, v) for sid, p, ls, vs in zip(sids, paths, lids, vals)
                for lid, v in zip(ls or [], vs or [])]
    else:
        if not dataset.has_sample_field(embeddings_field):
            raise ValueError(f"No field {embeddings_field!r} on the dataset")
        sids, paths, vals = sample_collection.values(["id", "filepath", embeddings_field])
        rows = list(zip(sids, sids, paths, vals))
    present = [r for r in rows if r[3] is not None]
    if not present:
        raise ValueError(f"Field {embeddings_field!r} holds no vectors in this collection")
    vecs = np.stack([np.asarray(r[3], dtype=np.float32).ravel() for r in present])
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs = vecs / np.maximum(norms, 1e-12)
    store = VectorStore.for_dataset(dataset, key, kind, uri=uri)
    store.create(vecs.shape[1])
    existing = store.fingerprints()
    if patches_field:
        alive = {i for sub in dataset.values(f"{list_path}.id") for i in (sub or [])}
    else:
        alive = set(dataset.values("id"))
    stale = [i for i in existing if i not in alive]
    if stale:
        store.delete(stale)
    # rows whose vector is already stored unchanged are not rewritten (their write time is
    # what tells incremental analyses that an item is unchanged)
    known = [j for j, r in enumerate(present) if r[0] in existing]
    same = set()
    if known:
        got_ids, got, _ = store.vectors([present[j][0] for j in known])
        at = {i: r for r, i in enumerate(got_ids)}
        for j in known:
            r = at.get(present[j][0])
            if r is not None and np.allclose(got[r], vecs[j], rtol=0, atol=1e-6):
                same.add(j)
    todo = np.array([j for j in range(len(present)) if j not in same], np.int64)
    for s in range(0, len(todo), 50_000):
        sel = todo[s:s + 50_000]
        chunk = [present[j] for j in sel]
        rows_ = {"id": [r[0] for r in chunk], "sample_id": [r[1] for r in chunk],
                 "filepath": [r[2] for r in chunk],
                 "fingerprint": [vci.file_fingerprint(r[2]) for r in chunk],
                 "vector": vecs[sel]}
        if all(r[0] not in existing for r in chunk):
            store.append(rows_)
        else:
            store.upsert(rows_)
    if len(todo) or stale:
        store.compact()
    store.ensure_index()
    summary = EmbeddingsRun(model=key, table=store.name, uri=store.uri, kind=kind,
                            total=len(rows), embedded=int(len(todo)), removed=len(stale),
                            skipped=len(rows) - len(present), seconds=round(time.time() - t0, 3))
    _save_run(dataset, dict(model=key, pretrained=None, model_key=key,
                            embeddings_field=embeddings_field or f"<{key}>",
                            patches_field=patches_field, table=store.name, kind=kind,
                            uri=store.uri, dim=int(vecs.shape[1])), summary)
    return summary


# -- text / image queries -------------------------------------------------------------------

def embed_text(texts, model=DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED, device="auto"):
    """Embeds a string or a list of strings → (N, D) L2-normalised float32."""
    if isinstance(texts, str):
        texts = [texts]
    return load_model(model, pretrained, device).embed_text(list(texts))


def embed_image(image, model=DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED, device="auto",
                box=None):
    """Embeds an image path or a ``PIL.Image`` (optionally a relative box of it) → (D,) float32."""
    from PIL import Image

    lm = load_model(model, pretrained, device)
    if isinstance(image, Image.Image):
        im = vci.to_rgb(image)
    else:
        im, _ = vci.load_image(str(image))
    if box is not None:
        im = vci.crop_relative(im, box)
    return lm.embed_tensors(lm.collate([lm.prepare(im)]))[0]
