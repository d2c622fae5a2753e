"""``analyze``: runs the analyzers of :mod:`visual_curation.core.analyzers` over the vectors in
LanceDB (and the pixels, for quality) and writes the ``vc_`` fields, a run record with the
cluster summaries, and ``vc_issues`` for one-click filtering."""
from __future__ import annotations

import logging
import time
from typing import Any, Mapping, Sequence

import numpy as np

from . import config as cfg
from . import fields as vcf
from . import incremental as vci
from . import runs as vcr
from . import store as vcs
from .issues import issue_lists, rederive_issues
from .similarity import latest_embeddings

logger = logging.getLogger(__name__)

from .analyzers import (ANALYSES, DEFAULT_THRESHOLD, FIELD_SPECS, ISSUES, LABEL_ANALYSES,
                        REGISTRY)

LARGE_VALUES = 1 << 28   # above this many vector values, vectors are held as float16
#: descriptions and declared kinds of every field (declared, so that a field whose values are
#: all None, "no duplicates found", still exists, is filterable and reads as "analysed")
DESCRIPTIONS = {f.name: f.description for f in FIELD_SPECS.values()}
FIELD_TYPES = {f.name: f.kind for f in FIELD_SPECS.values()}


def analysis_run_key(patches_field=None):
    return vcr.run_key("vc_analysis", vcs.kind_for(patches_field))


def _labels(collection, label_field, patches_field, n_items):
    if not label_field:
        return None
    dataset = collection._dataset
    if patches_field:
        if label_field != patches_field:
            raise ValueError("In object view the labels are the detections' own labels: "
                             f"pass label_field={patches_field!r} or leave it empty")
        list_path = vcf.label_list_path(dataset, patches_field)
        return [lab for sub in collection.values(f"{list_path}.label") for lab in (sub or [])]
    _check_label_field(dataset, label_field)
    return collection.values(f"{label_field}.label")


def _check_label_field(dataset, label_field):
    """Raises unless ``label_field`` is a Classification field of the samples."""
    import fiftyone.core.labels as fol

    f = dataset.get_field(label_field)
    doc = getattr(f, "document_type", None)
    if doc is None or not issubclass(doc, fol.Classification):
        kind = doc.__name__ if doc is not None else type(f).__name__
        raise ValueError(f"label_field {label_field!r} holds {kind}; mislabels/outliers need a "
                         "Classification field (or use patches_field for detections)")


def _inputs(collection, patches_field, label_field):
    """Items (samples or detections) of the collection, with everything analyzers may use."""
    dataset = collection._dataset
    if patches_field:
        list_path = vcf.label_list_path(dataset, patches_field)
        paths, lids, boxes = collection.values(
            ["filepath", f"{list_path}.id", f"{list_path}.bounding_box"])
        ids, fps, bxs = [], [], []
        for p, ls, bs in zip(paths, lids, boxes):
            for lid, b in zip(ls or [], bs or []):
                ids.append(lid); fps.append(p); bxs.append(list(b))
        created = None
    else:
        # one aggregation for every column
        want = ["id", "filepath", "created_at"]
        if label_field:
            _check_label_field(dataset, label_field)
            want.append(f"{label_field}.label")
        if not dataset.has_sample_field("created_at"):   # older datasets have none
            want.remove("created_at")
        got = dict(zip(want, collection.values(want)))
        ids, fps = got["id"], got["filepath"]
        bxs = None
        created = [c.timestamp() if c is not None else None
                   for c in got["created_at"]] if "created_at" in got else None
        labels = got.get(f"{label_field}.label") if label_field else None
        return ids, fps, bxs, labels, created
    labels = _labels(collection, label_field, patches_field, len(ids))
    return ids, fps, bxs, labels, created


def analyze(sample_collection, *, analyses: Sequence[str] | None = None,
            label_field: str | None = None, patches_field: str | None = None,
            embeddings_field: str | None = None, model: str | None = None,
            pretrained: str | None = None, thresholds: Mapping[str, float] | None = None,
            params: Mapping[str, Mapping[str, Any]] | None = None, progress=None,
            uri: str | None = None, overwrite: bool = False, force: bool = False,
            incremental: bool | None = None, wait: float = 0.0, **legacy) -> dict:
    """Runs all analyses (or the named ones) and writes the ``vc_`` fields.

    Args:
        sample_collection: a dataset or view (image samples, or detections with patches_field)
        analyses: names among ``ANALYSES`` (default: all that apply; ``mislabels`` and
            ``outliers`` need a ``label_field``)
        label_field: a Classification field (detections' own labels in object view)
        patches_field: analyse the objects of this Detections field (fields become attributes)
        embeddings_field: use the vectors stored in this field instead of CLIP embeddings
        model, pretrained: which embeddings to use (default: the most recent ones); computed
            first when given and missing
        thresholds: ``{issue: threshold}`` for ``vc_issues`` (issues not given keep the last
            run's threshold, 0.5 at first; :func:`~.review.set_issue_thresholds` moves them
            without analysing again)
        params: per-analysis parameters, ``{analysis: {name: value}}`` (each analyzer's
            ``defaults`` and ``param_help`` list them); an unknown name raises, listing the
            valid ones
        progress: None/True/False or a FiftyOne progress callback
        uri: LanceDB URI (default: where the embeddings are)
        overwrite: allow replacing a user's own field of the same name
        force: recompute everything even if an identical run exists
        incremental: None (default) analyses only the samples added since the last full run
            when that is possible (see :mod:`.incremental`), False always runs in full, True
            logs a warning when a full run is needed
        wait: seconds to wait for another analysis of the same dataset before raising
            :class:`~visual_curation.core.locks.RunLockedError`
        **legacy: analyzer parameters by their flat names (deprecated: use ``params``)

    Returns:
        a dict summary (counts per issue, cluster counts per level, timings)

    Example::

        import visual_curation as vc

        summary = vc.analyze(dataset, label_field="ground_truth",
                             params={"duplicates": {"dup_min_sim": 0.8}})
        summary["issues"]            # {"duplicate": 12, "mislabel": 40, ...}
    """
    from .locks import run_lock

    given = resolve_params(params, legacy)
    with run_lock(sample_collection._dataset, "analysis", wait=wait):
        return _analyze(sample_collection, label_field=label_field,
                        embeddings_field=embeddings_field, patches_field=patches_field,
                        analyses=analyses, model=model, pretrained=pretrained,
                        thresholds=thresholds, progress=progress, uri=uri, overwrite=overwrite,
                        force=force, incremental=incremental, params=given)


def resolve_params(params=None, legacy=None) -> dict[str, dict]:
    """``{analysis: {parameter: value}}`` as given (None values dropped), checked against the
    registry: an unknown analysis or parameter raises with the valid names. ``legacy`` flat
    names are accepted with a :class:`DeprecationWarning` and filed under their analysis."""
    import warnings

    out: dict[str, dict] = {}
    for name, values in (params or {}).items():
        if name not in REGISTRY:
            raise ValueError(f"params: unknown analysis {name!r}; choose from {list(ANALYSES)}")
        a = REGISTRY[name]
        unknown = sorted(set(values or {}) - set(a.defaults))
        if unknown:
            raise TypeError(f"params[{name!r}]: unknown parameter(s) {unknown}; {name} takes "
                            f"{sorted(a.defaults)}")
        out[name] = {k: v for k, v in (values or {}).items() if v is not None}
    owner = {k: name for name, a in REGISTRY.items() for k in a.defaults}
    for k, v in (legacy or {}).items():
        if k not in owner:
            raise TypeError(f"analyze() got an unexpected keyword argument {k!r}; analysis "
                            "parameters go in params={analysis: {name: value}}, with names "
                            f"among {sorted(owner)}")
        warnings.warn(f"analyze({k}=...) is deprecated: use params={{{owner[k]!r}: "
                      f"{{{k!r}: ...}}}}", DeprecationWarning, stacklevel=3)
        if v is not None:
            out.setdefault(owner[k], {})[k] = v
    return {k: v for k, v in out.items() if v}


def _analyze(sample_collection, **kwargs):
    # the field commit's process starts now, so that its start-up (~0.5 s) overlaps the
    # analysis; a run that writes nothing ends it unused
    commit_process = vcf.start_commit_process()
    try:
        return _analyze_run(sample_collection, commit_process=commit_process, **kwargs)
    finally:
        vcf.end_commit_process(commit_process)


def _analyze_run(sample_collection, label_field=None, embeddings_field=None, patches_field=None,
                 analyses=None, model=None, pretrained=None, thresholds=None, progress=None,
                 uri=None, overwrite=False, force=False, incremental=None, commit_process=None,
                 params=None):
    from .analyzers.base import AnalysisInput, jsonable
    from .embeddings import compute_embeddings, embeddings_run_key, import_embeddings

    t0 = time.time()
    dataset = sample_collection._dataset
    if len(sample_collection) == 0:
        raise ValueError("The collection is empty: nothing to analyse")
    names = list(analyses) if analyses else [a for a in ANALYSES if label_field or a not in
                                              LABEL_ANALYSES]
    unknown = [a for a in names if a not in ANALYSES]
    if unknown:
        raise ValueError(f"Unknown analyses {unknown}; choose from {list(ANALYSES)}")
    needs_labels = [a for a in names if REGISTRY[a].needs_labels]
    if needs_labels and not label_field:
        raise ValueError(f"{needs_labels} need a label_field (a Classification field)")
    bad = [k for k in (thresholds or {}) if k not in ISSUES]
    if bad:
        raise ValueError(f"Unknown issue thresholds {bad}; issues are {list(ISSUES)}")
    # the last run's thresholds (set_issue_thresholds moves them) unless given
    kept = (vcr.load_config(dataset, analysis_run_key(patches_field)) or {}).get("thresholds")
    thresholds = {**{k: DEFAULT_THRESHOLD for k in ISSUES},
                  **{k: v for k, v in (kept or {}).items() if k in ISSUES}, **(thresholds or {})}

    # embeddings
    if embeddings_field:
        run = import_embeddings(sample_collection, embeddings_field, uri=uri,
                                patches_field=patches_field)
        conf = vcr.load_config(dataset, embeddings_run_key(run.model, run.kind))
    elif model is not None:
        compute_embeddings(sample_collection, model=model, pretrained=pretrained,
                           patches_field=patches_field, progress=progress, uri=uri)
        conf = latest_embeddings(dataset, patches_field, model, pretrained)
    else:
        conf = latest_embeddings(dataset, patches_field)
    store = vcs.VectorStore(conf["table"], uri=uri or conf.get("uri"))

    steps = {"setup": time.time() - t0}
    ids, paths, boxes, labels, created = _inputs(sample_collection, patches_field, label_field)
    steps["read samples"] = time.time() - t0 - sum(steps.values())
    # float16 above 2^28 values (1 GiB as float32): a million 512-d vectors take 1 GiB, and
    # every analyzer computes in float32 blocks
    big = len(ids) * store.dim > LARGE_VALUES
    # and memory-mapped when larger than a share of the machine's memory
    v_ids, vecs, extra = store.vectors(
        ids, extra=["content_hash", "width", "height"], dtype=np.float16 if big else np.float32,
        mmap_dir=vcs.mmap_dir_for(len(ids) * store.dim * (2 if big else 4), store.uri))
    steps["read vectors"] = time.time() - t0 - sum(steps.values())
    present = set(v_ids)
    sel = np.flatnonzero(np.array([i in present for i in ids], bool))  # rows of vecs, in order

    fields_written = [f for a in names for f in REGISTRY[a].fields] + ["vc_issues"]
    prefix = "" if not patches_field else vcf.label_list_path(dataset, patches_field) + "."
    vcf.check_writable(dataset, fields_written, prefix=prefix, overwrite=overwrite)

    run_params = {k: dict(v) for k, v in (params or {}).items()}
    # what the scores depend on; the fingerprint adds the thresholds (vc_issues only)
    basis = vcr.params_hash(dict(
        analyses=sorted(names), label_field=label_field, patches_field=patches_field,
        table=conf["table"], version=store.table.version, params=run_params,
        ids=vcr.params_hash(list(ids)),
        labels=vcr.params_hash(labels) if labels is not None else None))
    fingerprint = vcr.params_hash(dict(basis=basis, thresholds=thresholds))
    key = analysis_run_key(patches_field)
    prev = vcr.load_config(dataset, key)
    have_fields = all(dataset.has_field(prefix + f) if prefix else dataset.has_sample_field(f)
                      for f in fields_written)
    if not force and prev and prev.get("fingerprint") == fingerprint and have_fields:
        logger.info("analyze: identical run already on the dataset; nothing to do")
        res = vcr.load_results(dataset, key) or {}
        counts = prev.get("issue_counts")  # set_issue_thresholds keeps them current
        return dict(res.get("summary", {}), skipped=True, **({"issues": counts} if counts else {}))
    if not force and prev and prev.get("basis") == basis and have_fields and not patches_field:
        scores = [i.field for i in ISSUES.values() if dataset.has_sample_field(i.field)]
        return _rederive(sample_collection, key, prev, fingerprint, thresholds, scores,
                         commit_process, t0)

    def sub(lst):
        return None if lst is None else [lst[j] for j in sel]

    t = time.time()
    base = vci.earlier_run(dataset, key, prev, names, label_field, patches_field, conf,
                             thresholds, run_params, ids, labels, v_ids, store, incremental,
                             force)
    if base is not None:
        base["steps"] = dict(steps, **{"check earlier run": time.time() - t})
        base["basis"] = basis

    inp = AnalysisInput(
        ids=list(v_ids),
        vectors=vecs if len(sel) else np.zeros((0, 1), np.float32),
        labels=sub(labels), filepaths=sub(paths), boxes=sub(boxes),
        sizes=[(w, h) if w else None for w, h in zip(extra["width"], extra["height"])],
        content_hashes=list(extra["content_hash"]),
        created=sub(created),
        planned=tuple(names),
        params=run_params,
    )
    if base is not None:
        return vci.extend_run(sample_collection, inp, base, names, params, thresholds,
                                  key, fingerprint, overwrite, progress, t0, commit_process)
    out, summaries, errors, timings = {}, {}, {}, {}
    import fiftyone.core.utils as fou

    for step, name in enumerate(names):
        a = REGISTRY[name]
        p = inp.settings(name)
        t = time.time()
        # one bar per analysis, counting items; a callback also learns which step this is
        pb = fou.ProgressBar(total=len(sel), progress=progress, iters_str="items",
                             start_msg=f"Analysis {step + 1}/{len(names)}: {name}")
        pb.vc_step = (step, len(names), name)

        def report(frac, msg="", _pb=pb):
            _pb.set_iteration(int(len(sel) * min(max(frac, 0.0), 1.0)))

        with pb:
            res = a.run(inp, progress=report, **p)
            report(1.0)
        timings[name] = round(time.time() - t, 3)
        summaries[name] = res.summary
        for j, msg in (res.errors or {}).items():
            errors[inp.ids[j]] = msg
        for f, vals in res.fields.items():
            out[f] = spread(vals, sel, len(ids))

    # vc_issues from every score present (this run's values, else the stored ones)
    stored = {}
    missing = [i.field for i in ISSUES.values() if i.field not in out and (
        dataset.has_field(prefix + i.field) if prefix else dataset.has_sample_field(i.field))]
    if missing:
        if patches_field:
            vals = sample_collection.values([prefix + f for f in missing])
            stored = {f: [x for s in v for x in (s or [])] for f, v in zip(missing, vals)}
        else:
            vals = sample_collection.values(missing)
            stored = dict(zip(missing, vals if len(missing) > 1 else [vals]))
    issues, counts = issue_lists({**stored, **out}, thresholds, range(len(ids)))
    out["vc_issues"] = issues

    _write(sample_collection, patches_field, ids, out, overwrite, commit_process)
    if errors:
        report_pixel_errors(sample_collection, patches_field, errors, summaries, overwrite)
    if not patches_field and "duplicates" in names:
        keep_signatures(inp, vcs.PixelSignatures(conf["table"], uri=store.uri), replace=True)
    summary = dict(
        items=len(ids), analysed=int(len(sel)), without_vectors=int(len(ids) - len(sel)),
        issues=counts, pixel_errors=len(errors), seconds=round(time.time() - t0, 3),
        timings=timings, embeddings=conf["table"], analyses=names)
    if "clusters" in summaries:
        summary["clusters"] = {str(i + 1): lv.get("n_clusters") for i, lv in
                               enumerate(summaries["clusters"].get("levels") or [])}
    inc_state = None if patches_field else dict(
        ids=vci.encode_ids(inp.ids), labels=vci.labels_hash(inp.labels), at=t0,
        full_items=len(inp), added_since_full=0)
    vcr.save(dataset, key, vcr.METHOD_ANALYSIS,
             dict(fingerprint=fingerprint, basis=basis, analyses=names, label_field=label_field,
                  patches_field=patches_field, embeddings=conf["table"],
                  model=conf.get("model_key"), thresholds=thresholds, params=run_params,
                  fields=[prefix + f for f in out]),
             results=dict(summary=summary, details=jsonable(summaries), incremental=inc_state))
    logger.info("analyze: %s", summary)
    return summary


def report_pixel_errors(collection, patches_field, errors, summaries, overwrite):
    """Items whose pixels could not be read: why, on their ``vc_error`` (samples; objects keep
    theirs from the embeddings run), and one line on the terminal instead of one per file."""
    from .embeddings import ERROR_DESCRIPTION

    fallback = (summaries.get("duplicates") or {}).get("vector_only_items")
    logger.warning("analyze: the pixels of %d items could not be read (see their %s)%s",
                   len(errors), cfg.ERROR_FIELD,
                   "; duplicates among them were judged from the vectors alone"
                   if fallback else "")
    if not patches_field:
        vcf.set_sample_values_by_id(collection._dataset, cfg.ERROR_FIELD, errors,
                                    description=ERROR_DESCRIPTION, overwrite=overwrite)


def _rederive(collection, key, prev, fingerprint, thresholds, scores, commit_process, t0):
    """Only the thresholds changed since the last run: ``vc_issues`` from the stored scores
    (the fields ``scores``)."""
    dataset = collection._dataset
    counts = rederive_issues(collection, scores, thresholds, commit_process)
    res = vcr.load_results(dataset, key) or {}
    summary = dict(res.get("summary") or {}, issues=counts, rederived=True,
                   seconds=round(time.time() - t0, 3))
    record = {k: v for k, v in prev.items() if k not in ("method", "cls", "type")}
    vcr.save(dataset, key, vcr.METHOD_ANALYSIS,
             dict(record, fingerprint=fingerprint, thresholds=thresholds),
             results=dict(res, summary=summary))
    logger.info("analyze: thresholds changed; vc_issues re-derived from the stored scores")
    return summary


def keep_signatures(inp, signatures, replace):
    """Stores the duplicate check's thumbnails of the images this run decoded (a full run
    replaces the table). Only an optimisation for later incremental runs: never fatal."""
    got = inp.shared.dup_signatures
    rows = sorted(got)
    hashes = inp.content_hashes
    try:
        signatures.write([inp.ids[r] for r in rows],
                         [hashes[r] if hashes is not None else None for r in rows],
                         np.stack([got[r][0] for r in rows]) if rows else np.zeros((0, 1)),
                         [got[r][1] for r in rows], replace=replace)
    except Exception as e:  # noqa: BLE001
        logger.warning("analyze: could not store the duplicate-check thumbnails (%s); later "
                       "incremental runs decode earlier images instead", e)


def spread(vals, sel, n: int) -> list:
    """An analysis' values for the analysed rows ``sel`` as a list of ``n`` plain Python values
    (None for the rows without vectors, and for NaN)."""
    if isinstance(vals, np.ndarray):
        got = vals.tolist()                       # one pass in C, not a scalar at a time
        if vals.dtype.kind == "f":
            for i in np.flatnonzero(np.isnan(vals)).tolist():
                got[i] = None
    else:
        got = [plain(v) for v in vals]
    if len(sel) == n:                             # ``sel`` is increasing: every row, in order
        return got
    full = [None] * n
    for j, v in zip(sel.tolist(), got):
        full[j] = v
    return full


def plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v


def _write(collection, patches_field, ids, out, overwrite, commit_process=None):
    if patches_field:
        vcf.set_label_values(collection, patches_field,
                             {f: dict(zip(ids, vals)) for f, vals in out.items()},
                             descriptions=DESCRIPTIONS, overwrite=overwrite)
    else:
        vcf.set_sample_values(collection, out, descriptions=DESCRIPTIONS, overwrite=overwrite,
                              types=FIELD_TYPES, commit_process=commit_process)


def cluster_summaries(dataset, patches_field=None):
    """The stored per-level cluster summaries of the last analysis (for the panel)."""
    res = vcr.load_results(dataset, analysis_run_key(patches_field)) or {}
    return ((res.get("details") or {}).get("clusters") or {}).get("levels") or {}


def delete_run(dataset, *, uri: str | None = None) -> dict:
    """Removes exactly what Visual Curation wrote: its ``vc_`` fields (sample fields and
    detection attributes it created), its run records and its LanceDB tables. A field of
    yours is never removed, whatever its name.

    Returns:
        ``{"fields": [...], "runs": [...], "brain_runs": [...], "tables": [...]}``: what
        was removed (``brain_runs``: the Brain similarity runs over our tables)

    Example::

        import visual_curation as vc

        removed = vc.delete_run(dataset)
        removed["fields"]            # ["vc_cluster_1", ..., "vc_issues"]
    """
    dataset = dataset._dataset
    vcf.recover(dataset)  # a pending field commit must not bring fields back afterwards
    vcf.drop_stage(dataset)
    removed_fields = vcf.our_fields(dataset)
    sample_fields = [f for f in removed_fields if "." not in f]
    label_fields = [f for f in removed_fields if "." in f]
    for f in sorted(label_fields, key=len, reverse=True):
        dataset.delete_sample_field(f)
    if sample_fields:
        dataset.delete_sample_fields(sample_fields)
    from .embedding_map import delete_maps

    delete_maps(dataset)           # the embedding maps' brain runs (their records go below)
    from . import brain_index

    brain_keys = brain_index.unregister_all(dataset)   # the App's view of our vectors
    keys = vcr.ours(dataset)
    uris = {uri} if uri else set()
    for k in keys:
        conf = vcr.load_config(dataset, k) or {}
        if conf.get("uri") and not uri:
            uris.add(conf["uri"])
        dataset.delete_run(k)
    tables = []
    for u in uris or {None}:
        try:
            tables += vcs.drop_dataset_tables(dataset, uri=u)
        except Exception as e:  # noqa: BLE001 - an unreachable store must not block cleanup
            logger.warning("Could not drop LanceDB tables at %s: %s", u, e)
    return dict(fields=removed_fields, runs=keys, brain_runs=brain_keys, tables=tables)
