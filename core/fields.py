"""Writing ``vc_`` fields onto samples (or detections) in bulk, without ever touching a user's own.

Fields that Visual Curation creates carry ``info={"visual_curation": True}``. A field with one of
our names that lacks that mark belongs to the user: it is never overwritten unless the caller
passes ``overwrite=True``.
"""
from __future__ import annotations

import logging

from . import config as cfg

logger = logging.getLogger(__name__)

MARK = "visual_curation"


class FieldConflictError(ValueError):
    """A user's own field has the name a Visual Curation field needs."""


def _field_obj(dataset, path):
    try:
        return dataset.get_field(path)
    except Exception:  # noqa: BLE001
        return None


def is_ours(field):
    return bool(field is not None and isinstance(getattr(field, "info", None), dict)
                and field.info.get(MARK))


def check_writable(dataset, names, prefix="", overwrite=False):
    """Raises :class:`FieldConflictError` if any of ``names`` exists and is not ours."""
    for name in names:
        if not name.startswith(cfg.FIELD_PREFIX):
            raise ValueError(f"Refusing to write {name!r}: Visual Curation writes only "
                             f"'{cfg.FIELD_PREFIX}' fields")
        path = prefix + name
        f = _field_obj(dataset, path)
        if f is not None and not is_ours(f) and not overwrite:
            raise FieldConflictError(
                f"The dataset already has a field {path!r} that Visual Curation did not create. "
                "Rename it, or pass overwrite=True to let Visual Curation replace it.")


def mark(dataset, path, description=None):
    f = _field_obj(dataset, path)
    if f is None:
        return
    info = dict(f.info or {})
    if info.get(MARK) and (description is None or f.description == description):
        return
    info[MARK] = True
    f.info = info
    if description is not None:
        f.description = description
    f.save()


TMP_PREFIX = "vc_tmp_"
JOURNAL = "visual_curation_commits"

# The commit of a write: one server-side $rename of every temporary field over its final name.
# MongoDB aborts a multi-document update when its client disconnects, so a run killed during the
# rename would leave a field on part of the samples. The rename therefore runs in a separate
# process of its own session (pymongo only, started while the values are written) that outlives
# the run once it has been sent the renames. Before they are sent, a journal document names
# them, so that the next write (or recover()) finishes a commit that process never received or
# did not finish (roll forward: $rename is idempotent per document); until then every field is
# whole, with its old values.
_COMMIT_AGENT = """
import json, os, sys
import pymongo
conn = json.loads(os.environ["VC_COMMIT_CONN"])
db = pymongo.MongoClient(**conn["kwargs"])[conn["db"]]
db.command("ping")
spec = sys.stdin.read()  # sent once the temporaries are written; nothing if the run died first
if spec:
    spec = json.loads(spec)
    db[spec["coll"]].update_many({}, {"$rename": spec["renames"]})
    db[spec["journal"]].delete_one({"_id": spec["coll"]})
"""


def _start_commit_process():
    """Starts the commit process early (interpreter start, pymongo import and connection take
    ~0.5 s), in its own session so that nothing sent to this run reaches it. None if it cannot
    start: the commit then runs in this process."""
    import json
    import os
    import subprocess
    import sys

    import fiftyone as fo
    import fiftyone.core.odm.database as food

    try:
        food.get_db_client()  # connected, so the connection settings are known
        conn = dict(kwargs=dict(food._connection_kwargs), db=fo.config.database_name)
        return subprocess.Popen([sys.executable, "-c", _COMMIT_AGENT], start_new_session=True,
                                env={**os.environ, "VC_COMMIT_CONN": json.dumps(conn)},
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    except (OSError, subprocess.SubprocessError, TypeError) as e:
        logger.warning("Field commit process did not start (%s); committing in this process", e)
        return None


def _tmp_name(name):
    return TMP_PREFIX + name[len(cfg.FIELD_PREFIX):]


def _journal():
    import fiftyone.core.odm as foo

    return foo.get_db_conn()[JOURNAL]


def pending_commit(dataset):
    """The renames ``{temporary: final}`` of a commit that has not finished, or None."""
    doc = _journal().find_one({"_id": dataset._sample_collection_name})
    return doc["renames"] if doc else None


def recover(dataset):
    """Finishes a field commit that an interrupted run left pending. Returns True if there was
    one. Safe at any time: renaming a temporary field over its final name is idempotent."""
    renames = pending_commit(dataset)
    if not renames:
        return False
    dataset._sample_collection.update_many({}, {"$rename": renames})
    _journal().delete_one({"_id": dataset._sample_collection_name})
    _reload(dataset)
    return True


def _reload(dataset):
    import fiftyone.core.sample as fos

    fos.Sample._reload_docs(dataset._sample_collection_name)
    dataset.reload()


def _commit(dataset, renames, proc):
    import json

    coll = dataset._sample_collection_name
    _journal().replace_one({"_id": coll}, {"_id": coll, "renames": renames}, upsert=True)
    if proc is not None:
        spec = dict(coll=coll, journal=JOURNAL, renames=renames)
        try:
            _, err = proc.communicate(json.dumps(spec), timeout=3600)
            if proc.returncode:
                logger.warning("Field commit process failed (%s); committing in this process",
                               err.strip().splitlines()[-1:] or proc.returncode)
        except (OSError, ValueError) as e:
            logger.warning("Field commit process failed (%s); committing in this process", e)
    recover(dataset)  # a no-op when the commit process finished; else finishes it here
    _reload(dataset)


def _declare(dataset, name, kind, description=None):
    """Adds an empty sample field of a simple declared kind ("int", "float", "str", "bool",
    "list[str]")."""
    import fiftyone.core.fields as fof

    if kind == "list[str]":
        ftype, kw = fof.ListField, dict(subfield=fof.StringField)
    else:
        ftype, kw = {"int": fof.IntField, "float": fof.FloatField, "str": fof.StringField,
                     "bool": fof.BooleanField}[kind], {}
    dataset.add_sample_field(name, ftype, **kw)
    mark(dataset, name, description)


def _kind(field):
    """(field class, element class) — what a field stores."""
    sub = getattr(field, "field", None)
    return type(field), (type(sub) if sub is not None else None)


def _declare_like(dataset, name, field, description=None):
    ftype, sub = _kind(field)
    dataset.add_sample_field(name, ftype, **({"subfield": sub} if sub else {}))
    mark(dataset, name, description)


def set_sample_values(collection, values, descriptions=None, overwrite=False, types=None):
    """Bulk-writes ``{field: [value per sample in collection order]}`` on ``collection``; all the
    fields of one call change together or not at all.

    ``values`` lists must be aligned with ``collection.values("id")``. Each field is written in
    bulk into a temporary field (pre-filled server-side with the current values when the
    collection is only part of the dataset); then one commit renames every temporary field over
    its final name (see ``_COMMIT_AGENT``: it outlives a killed run, and a journal lets the next
    write finish it). Readers never see a field on only part of the samples once a commit has
    finished. ``types``: ``{field: "int"|"float"|"str"|"bool"|"list[str]"}`` declares the fields
    whose values are all None, so they still exist ("analysed, nothing found").
    """
    dataset = collection._dataset
    check_writable(dataset, values.keys(), overwrite=overwrite)
    recover(dataset)
    descriptions = descriptions or {}
    whole = collection is dataset or len(collection) == len(dataset)
    stale = [f for f in dataset.get_field_schema() if f.startswith(TMP_PREFIX)]
    if stale:  # left over by an interrupted run that never reached its commit
        dataset.delete_sample_fields(stale)
    renames = {}
    proc = _start_commit_process()
    try:
        _write_temporaries(dataset, collection, values, whole, descriptions, types, renames)
        if renames:
            _commit(dataset, renames, proc)
            proc = None
    finally:
        if proc is not None and proc.poll() is None:  # nothing to commit, or a failed write
            proc.communicate("")
    if renames:
        dataset.delete_sample_fields(list(renames))  # their schema entries: no sample holds them


_PY_KIND = {bool: "bool", int: "int", float: "float", str: "str"}


def _infer_kind(vals):
    """The declared kind of plain Python values (None when mixed or not a simple kind)."""
    kinds = set()
    for v in vals:
        if v is None:
            continue
        if isinstance(v, list):
            if not all(isinstance(x, str) for x in v):
                return None
            kinds.add("list[str]")
        else:
            k = _PY_KIND.get(type(v))
            if k is None:
                return None
            kinds.add(k)
    if kinds == {"int", "float"}:
        return "float"
    return kinds.pop() if len(kinds) == 1 else None


def _bulk_set(dataset, ids, columns):
    """Writes ``{field: [value per id]}`` for the sample ``ids`` in one server-side pass: the
    rows go into a staging collection, then one ``$merge`` joins them into the samples by _id
    (one update per sample for all fields, instead of one bulk write per field)."""
    from datetime import datetime

    import fiftyone.core.odm as foo
    from bson import ObjectId

    if not columns:
        return
    coll = dataset._sample_collection_name
    stage = foo.get_db_conn()[f"visual_curation_stage.{coll}"]
    stage.drop()
    names = list(columns)
    now = datetime.utcnow()
    block = 20000
    try:
        for k in range(0, len(ids), block):
            stop = min(k + block, len(ids))
            stage.insert_many([{"_id": ObjectId(ids[j]), "last_modified_at": now,
                                **{f: columns[f][j] for f in names}} for j in range(k, stop)],
                              ordered=False)
        list(stage.aggregate([{"$merge": {"into": coll, "on": "_id", "whenMatched": "merge",
                                          "whenNotMatched": "discard"}}]))
    finally:
        stage.drop()


def _write_temporaries(dataset, collection, values, whole, descriptions, types, renames):
    raw = dataset._sample_collection
    columns = {}
    for name, vals in values.items():
        tmp = _tmp_name(name)
        old = _field_obj(dataset, name)
        vals = list(vals)
        kind = (types or {}).get(name) or _infer_kind(vals)
        if old is not None and not whole:  # the samples outside the collection keep theirs
            raw.update_many({}, [{"$set": {tmp: "$" + name}}])
        if all(v is None for v in vals) and old is not None:
            _declare_like(dataset, tmp, old)
            columns[tmp] = vals
        elif kind is not None:
            _declare(dataset, tmp, kind)
            columns[tmp] = vals
        elif all(v is None for v in vals):  # nothing to infer a type from, nothing declared
            continue
        else:  # values of another kind: FiftyOne infers and validates their type
            collection.set_values(tmp, vals)
        mark(dataset, tmp)
        new = _field_obj(dataset, tmp)
        if old is not None and _kind(old) != _kind(new):  # a type change: not atomic, rare
            dataset.delete_sample_field(name)
            old = None
        if old is None:  # declared before the commit: its values never exist undeclared
            _declare_like(dataset, name, new, descriptions.get(name))
        else:
            mark(dataset, name, descriptions.get(name))
        renames[tmp] = name
    if columns:
        _bulk_set(dataset, collection.values("id"), columns)


def set_sample_values_by_id(dataset, field, mapping, description=None, overwrite=False):
    """Bulk-writes ``{sample_id: value}`` to ``field`` (other samples untouched)."""
    check_writable(dataset, [field], overwrite=overwrite)
    if not mapping:
        return
    dataset.set_values(field, mapping, key_field="id")
    mark(dataset, field, description)


def set_label_values(collection, patches_field, values, descriptions=None, overwrite=False):
    """Bulk-writes detection attributes ``{attr: {label_id: value}}`` inside ``patches_field``."""
    dataset = collection._dataset
    list_field = _label_list_path(dataset, patches_field)
    check_writable(dataset, values.keys(), prefix=list_field + ".", overwrite=overwrite)
    ids = collection.values(f"{list_field}.id")
    for name, mapping in values.items():
        nested = [[mapping.get(i) for i in (sub or [])] if sub is not None else None for sub in ids]
        collection.set_values(f"{list_field}.{name}", nested)
        mark(dataset, f"{list_field}.{name}", (descriptions or {}).get(name))


def _label_list_path(dataset, patches_field):
    import fiftyone.core.labels as fol

    f = _field_obj(dataset, patches_field)
    doc_type = getattr(f, "document_type", None)
    if doc_type is None:
        raise ValueError(f"{patches_field!r} is not a label field of this dataset")
    if issubclass(doc_type, fol.Detections):
        return f"{patches_field}.detections"
    if issubclass(doc_type, fol.Polylines):
        return f"{patches_field}.polylines"
    raise ValueError(f"{patches_field!r} holds {doc_type.__name__}; object view needs "
                     "Detections (boxes)")


def our_fields(dataset):
    """Every field path (sample level and label attributes) that Visual Curation created."""
    out = []
    schema = dataset.get_field_schema(flat=True)
    for path in schema:
        if path.rsplit(".", 1)[-1].startswith(cfg.FIELD_PREFIX) and is_ours(_field_obj(dataset, path)):
            out.append(path)
    return out
