"""Carrying Visual Curation's results to a clone.

A FiftyOne clone of a view (``view.clone()``, or "clean dataset → a new dataset") copies the
samples with their ids and ``vc_`` fields, but not the dataset's run records, and the LanceDB
tables are keyed by the dataset's id (:func:`.store.table_name`), so the clone has neither
vectors nor runs: the cluster panel, search and incremental analyses would see nothing.
:func:`carry_results` gives the clone its own copy of what belongs to its samples.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import runs as vcr
from . import store as vcs

if TYPE_CHECKING:
    from fiftyone.core.collections import SampleCollection

logger = logging.getLogger(__name__)


def carry_results(source: SampleCollection, target: SampleCollection, *,
                  uri: str | None = None) -> dict:
    """Copies Visual Curation's results of ``source`` to ``target``, a clone of some of its
    samples (same sample ids): every LanceDB table of ``source`` with the rows of
    ``target``'s samples and objects, the run records (embeddings and analyses), and the Brain
    similarity runs over the copied tables (the App's similarity tools). Tables and records
    that ``target`` already has are replaced; nothing of ``source`` changes.

    Args:
        source: the dataset (or a view of it) the samples were cloned from
        target: the clone (a dataset or a view of it)
        uri: the LanceDB location (default: the configured one)

    Returns:
        ``{"tables": {new table: rows}, "runs": [run keys], "brain_runs": [keys]}``

    Example::

        import visual_curation as vc

        kept = dataset.match_tags("keep").clone("kept", persistent=True)
        vc.carry_results(dataset, kept)
        vc.find_similar(kept, text="a photo of a sneaker", k=10)   # works at once
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    src, dst = source._dataset, target._dataset
    if src._doc.id == dst._doc.id:
        raise ValueError("carry_results copies to another dataset: source and target are one")
    db = vcs.connect(uri)
    src_prefix, dst_prefix = f"vc_{src._doc.id}__", f"vc_{dst._doc.id}__"
    names = sorted(n for n in vcs.list_tables(db) if n.startswith(src_prefix))
    samples = pa.array(sorted(set(dst.values("id"))), pa.string())
    kept_ids = [samples]
    copied = {}
    # vectors tables first (rows of the target's samples: their images and objects), then
    # the tables keyed by those rows' ids (pixel signatures)
    for name in sorted(names, key=lambda n: n.endswith(vcs.PixelSignatures.SUFFIX)):
        tbl = db.open_table(name)
        by_sample = "sample_id" in tbl.schema.names
        keep = samples if by_sample else pa.concat_arrays(kept_ids)
        new = dst_prefix + name[len(src_prefix):]
        if new in vcs.list_tables(db):
            db.drop_table(new)
        out, rows = None, 0
        for batch in _batches(tbl):
            mine = batch.filter(pc.is_in(batch.column("sample_id" if by_sample else "id"),
                                         value_set=keep))
            if not mine.num_rows:
                continue
            part = pa.Table.from_batches([mine]).select(tbl.schema.names)
            if out is None:
                out = db.create_table(new, data=part, schema=tbl.schema)
            else:
                out.add(part)
            rows += mine.num_rows
            if by_sample:
                kept_ids.append(mine.column("id").cast(pa.string()))
        if out is None:
            db.create_table(new, schema=tbl.schema)
        copied[new] = rows
    runs, brain_runs = _carry_runs(src, dst, src_prefix, dst_prefix)
    logger.info("carry_results: %d tables, %d runs to %s", len(copied), len(runs), dst.name)
    return dict(tables=copied, runs=runs, brain_runs=brain_runs)


def _batches(tbl, size=65536):
    """Every row of a LanceDB table, streamed in record batches."""
    q = tbl.search().limit(None)
    try:
        yield from q.to_batches(size)
    except (AttributeError, TypeError, NotImplementedError):  # a client without streaming
        yield from q.to_arrow().to_batches(max_chunksize=size)


def _carry_runs(src, dst, src_prefix, dst_prefix):
    """Our run records of ``src`` on ``dst``, their table names moved to ``dst``'s; the Brain
    similarity run of each embeddings run."""
    from . import brain_index
    from .embedding_map import METHOD_MAP

    runs, brain_runs = [], []
    for key in vcr.ours(src):
        conf = vcr.load_config(src, key) or {}
        method = conf.pop("method", None)
        if method == METHOD_MAP:      # a 2-D map of the source's points: not the clone's
            continue
        if str(conf.get("table") or "").startswith(src_prefix):
            conf["table"] = dst_prefix + conf["table"][len(src_prefix):]
        vcr.save(dst, key, method, conf, results=vcr.load_results(src, key))
        runs.append(key)
        if method == vcr.METHOD_EMBEDDINGS and conf.get("table"):
            try:
                bk = brain_index.register(dst, conf)
            except Exception as e:  # noqa: BLE001 - only the App's own tools miss the vectors
                logger.warning("Could not register the Brain similarity run: %s", e)
                bk = None
            if bk:
                brain_runs.append(bk)
    return runs, brain_runs
