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


TMP_PREFIX = "vc_tmp_"   # temporaries of earlier versions, removed when found
JOURNAL = "visual_curation_commits"
STAGE_PREFIX = "visual_curation_stage."
#: a value in ``set_sample_values`` that leaves the sample's field as it is
KEEP = type("Keep", (), {"__repr__": lambda self: "KEEP"})()

# A write is staged, then committed in one server operation. The values go, one row per sample
# with every field, into a staging collection that no reader looks at; the commit is one
# aggregation ``$merge`` of those rows into the samples by _id. MongoDB aborts a multi-document
# operation when its client disconnects, so the commit runs in a separate process of its own
# session (pymongo only, started while the rows are staged) that outlives a killed run once it
# has been told to go. Before that, a journal document names the staging collection, so that
# the next write (or recover()) finishes a commit that process never received or did not
# finish (roll forward: merging the same rows again is idempotent); until then every field is
# whole, with its old values.
_COMMIT_AGENT = """
import json, os, sys
import pymongo
conn = json.loads(os.environ["VC_COMMIT_CONN"])
db = pymongo.MongoClient(**conn["kwargs"])[conn["db"]]
db.command("ping")
spec = sys.stdin.read()  # sent once the rows are staged; nothing if the run died first
if spec:
    spec = json.loads(spec)
    list(db[spec["stage"]].aggregate([{"$merge": {
        "into": spec["coll"], "on": "_id", "whenMatched": "merge",
        "whenNotMatched": "discard"}}]))
    db[spec["journal"]].delete_one({"_id": spec["coll"]})
    db.drop_collection(spec["stage"])
    print("committed", flush=True)  # the caller goes on; this process then exits on its own
"""


def start_commit_process():
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
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    except (OSError, subprocess.SubprocessError, TypeError) as e:
        logger.warning("Field commit process did not start (%s); committing in this process", e)
        return None


def end_commit_process(proc):
    """Ends a commit process that was not given anything to commit (it exits on an empty
    spec); one that committed exits by itself."""
    if proc is not None and proc.poll() is None and not proc.stdin.closed:
        proc.communicate("")


def _db():
    import fiftyone.core.odm as foo

    return foo.get_db_conn()


def _journal():
    return _db()[JOURNAL]


def _merge(coll, stage):
    list(_db()[stage].aggregate([{"$merge": {"into": coll, "on": "_id", "whenMatched": "merge",
                                             "whenNotMatched": "discard"}}]))


def pending_commit(dataset):
    """The journal entry of a commit that has not finished (``{"stage": collection}``), or
    None."""
    return _journal().find_one({"_id": dataset._sample_collection_name})


def recover(dataset):
    """Finishes a field commit that an interrupted run left pending. Returns True if there was
    one. Safe at any time: merging the staged rows again changes nothing."""
    doc = pending_commit(dataset)
    if not doc:
        return False
    coll = dataset._sample_collection_name
    if doc.get("stage") in _db().list_collection_names():
        _merge(coll, doc["stage"])
    _journal().delete_one({"_id": coll})
    _db().drop_collection(doc["stage"])
    _reload(dataset)
    return True


def drop_stage(dataset):
    """Drops the dataset's staging collection (left by a run killed before its commit)."""
    _db().drop_collection(STAGE_PREFIX + dataset._sample_collection_name)


def _reload(dataset):
    import fiftyone.core.sample as fos

    fos.Sample._reload_docs(dataset._sample_collection_name)
    dataset.reload()


def _stage(dataset, ids, columns):
    """Writes ``{field: [value per id]}`` as rows ``{_id, last_modified_at, field: value...}``
    into the dataset's staging collection; returns its name."""
    from datetime import datetime

    from bson import ObjectId

    name = STAGE_PREFIX + dataset._sample_collection_name
    stage = _db()[name]
    stage.drop()
    names = list(columns)
    now = datetime.utcnow()
    block = 20000
    for k in range(0, len(ids), block):
        stop = min(k + block, len(ids))
        stage.insert_many([{"_id": ObjectId(ids[j]), "last_modified_at": now,
                            **{f: columns[f][j] for f in names if columns[f][j] is not KEEP}}
                           for j in range(k, stop)], ordered=False)
    return name


def _commit(dataset, stage, proc):
    import json
    import subprocess

    coll = dataset._sample_collection_name
    _journal().replace_one({"_id": coll}, {"_id": coll, "stage": stage}, upsert=True)
    if proc is not None:
        spec = dict(coll=coll, stage=stage, journal=JOURNAL)
        try:
            proc.stdin.write(json.dumps(spec))
            proc.stdin.close()
            if proc.stdout.readline().strip() != "committed":   # died before committing
                _, err = proc.communicate(timeout=60)
                logger.warning("Field commit process failed (%s); committing in this process",
                               err.strip().splitlines()[-1:] or proc.returncode)
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            logger.warning("Field commit process failed (%s); committing in this process", e)
    recover(dataset)  # a no-op when the commit process finished; else finishes it here
    _reload(dataset)


def _declare(dataset, name, kind, description=None):
    """Adds an empty sample field of a simple declared kind ("int", "float", "str", "bool",
    "list[str]")."""
    ftype, sub = _declared_kind(kind)
    dataset.add_sample_field(name, ftype, **({"subfield": sub} if sub else {}))
    mark(dataset, name, description)


def _kind(field):
    """(field class, element class) — what a field stores."""
    sub = getattr(field, "field", None)
    return type(field), (type(sub) if sub is not None else None)


_PY_KIND = {bool: "bool", int: "int", float: "float", str: "str"}


def _infer_kind(vals):
    """The declared kind of plain Python values (None when mixed or not a simple kind)."""
    kinds = set()
    for v in vals:
        if v is None or v is KEEP:
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


def set_sample_values(collection, values, descriptions=None, overwrite=False, types=None,
                      ids=None, commit_process=None):
    """Bulk-writes ``{field: [value per sample]}`` on the samples of ``collection`` (or on the
    samples ``ids``, when given); all the fields of one call change together or not at all.

    ``values`` lists are aligned with ``ids`` or ``collection.values("id")``; a value ``KEEP``
    leaves that sample's field as it is. The rows are
    staged, then committed in one server-side ``$merge`` (see ``_COMMIT_AGENT``: the commit
    outlives a killed run, and a journal lets the next write finish it); samples outside the
    collection keep their values. ``types``: ``{field: "int"|"float"|"str"|"bool"|
    "list[str]"}`` declares the kinds (values that are all None still create the field:
    "analysed, nothing found"); other fields' kinds are inferred from their values.
    ``commit_process``: one from :func:`start_commit_process` that the caller started earlier,
    so that its start-up overlapped the caller's work; this call ends it.
    """
    try:
        _set_sample_values(collection, values, descriptions, overwrite, types, ids,
                           commit_process)
    finally:
        end_commit_process(commit_process)  # when not used: it ends without committing


def _set_sample_values(collection, values, descriptions, overwrite, types, ids, proc_early):
    dataset = collection._dataset
    check_writable(dataset, values.keys(), overwrite=overwrite)
    recover(dataset)
    descriptions = descriptions or {}
    stale = [f for f in dataset.get_field_schema() if f.startswith(TMP_PREFIX)]
    if stale:  # temporaries an interrupted run of an earlier version left
        dataset.delete_sample_fields(stale)
    columns = {}
    for name, vals in values.items():
        vals = list(vals)
        kind = (types or {}).get(name) or _infer_kind(vals)
        if kind is None and any(v is KEEP for v in vals):
            raise ValueError(f"{name}: KEEP needs a declared or inferable kind")
        old = _field_obj(dataset, name)
        if kind is None:
            if all(v is None for v in vals) and old is None:
                continue  # nothing to infer a type from, nothing declared: no field
            if not all(v is None for v in vals):
                # values of another kind: FiftyOne infers and validates their type (one bulk
                # write of its own, not part of the commit)
                (collection.select(ids) if ids is not None else collection).set_values(
                    name, vals)
                mark(dataset, name, descriptions.get(name))
                continue
        if old is not None and kind is not None and _kind(old) != _declared_kind(kind):
            dataset.delete_sample_field(name)  # a type change (a user's field replaced): rare
            old = None
        if old is None:  # declared before the commit: its values never exist undeclared
            _declare(dataset, name, kind, descriptions.get(name))
        else:
            mark(dataset, name, descriptions.get(name))
        columns[name] = vals
    if not columns:
        return
    proc = proc_early or start_commit_process()
    try:
        stage = _stage(dataset, list(ids) if ids is not None else collection.values("id"),
                       columns)
        _commit(dataset, stage, proc)
        proc = None
    finally:
        end_commit_process(proc)  # the staging failed: nothing to commit


def _declared_kind(kind):
    """(field class, element class) of a declared kind (as :func:`_kind` reads a field)."""
    import fiftyone.core.fields as fof

    if kind == "list[str]":
        return fof.ListField, fof.StringField
    return {"int": fof.IntField, "float": fof.FloatField, "str": fof.StringField,
            "bool": fof.BooleanField}[kind], None


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
    list_field = label_list_path(dataset, patches_field)
    check_writable(dataset, values.keys(), prefix=list_field + ".", overwrite=overwrite)
    ids = collection.values(f"{list_field}.id")
    for name, mapping in values.items():
        nested = [[mapping.get(i) for i in (sub or [])] if sub is not None else None for sub in ids]
        collection.set_values(f"{list_field}.{name}", nested)
        mark(dataset, f"{list_field}.{name}", (descriptions or {}).get(name))


def detection_fields(dataset):
    """The sample fields object view can analyse: ``Detections`` (boxes), sorted."""
    import fiftyone.core.labels as fol

    out = []
    for name, field in dataset._dataset.get_field_schema().items():
        doc = getattr(field, "document_type", None)
        if doc is not None and issubclass(doc, fol.Detections):
            out.append(name)
    return sorted(out)


def label_list_path(dataset, patches_field):
    """``"<field>.detections"``: the list of objects of a field :func:`detection_fields`
    offers; a clear error for anything else."""
    import fiftyone.core.labels as fol

    f = _field_obj(dataset, patches_field)
    doc_type = getattr(f, "document_type", None)
    if doc_type is None:
        raise ValueError(f"{patches_field!r} is not a label field of this dataset")
    if issubclass(doc_type, fol.Detections):
        return f"{patches_field}.detections"
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
