"""Writing ``vc_`` fields onto samples (or detections) in bulk, without ever touching a user's own.

Fields that Visual Curation creates carry ``info={"visual_curation": True}``. A field with one of
our names that lacks that mark belongs to the user: it is never overwritten unless the caller
passes ``overwrite=True``.
"""
from __future__ import annotations

from . import config as cfg

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


def _tmp_name(name):
    return TMP_PREFIX + name[len(cfg.FIELD_PREFIX):]


def _declare(dataset, name, kind):
    """Adds an empty sample field of a simple declared kind ("int", "float", "str", "bool",
    "list[str]")."""
    import fiftyone.core.fields as fof

    if kind == "list[str]":
        dataset.add_sample_field(name, fof.ListField, subfield=fof.StringField)
        return
    ftype = {"int": fof.IntField, "float": fof.FloatField, "str": fof.StringField,
             "bool": fof.BooleanField}[kind]
    dataset.add_sample_field(name, ftype)


def set_sample_values(collection, values, descriptions=None, overwrite=False, types=None):
    """Bulk-writes ``{field: [value per sample in collection order]}`` on ``collection``, each
    field all-or-nothing.

    ``values`` lists must be aligned with ``collection.values("id")``. Each field is written in
    bulk into a temporary field (pre-filled server-side with the current values when the
    collection is only part of the dataset) and then renamed over the old one, so a crash while
    the values are written never leaves a half-written field. The final swap uses FiftyOne's
    delete/rename, which update the sample documents one by one: a kill inside that short
    window can leave the field on part of the samples until the next run rewrites it.
    ``types``: ``{field: "int"|"float"|"str"|"bool"|"list[str]"}`` declares the fields whose
    values are all None, so they still exist ("analysed, nothing found").
    """
    dataset = collection._dataset
    check_writable(dataset, values.keys(), overwrite=overwrite)
    whole = collection is dataset or len(collection) == len(dataset)
    raw = dataset._sample_collection
    for name, vals in values.items():
        tmp = _tmp_name(name)
        if dataset.has_sample_field(tmp):  # left over by an interrupted run
            dataset.delete_sample_field(tmp)
        exists = dataset.has_sample_field(name)
        vals = list(vals)
        if all(v is None for v in vals):  # nothing to infer a type from
            if exists:
                collection.set_values(name, vals)
            elif (types or {}).get(name):     # declared: "analysed, nothing found"
                _declare(dataset, name, types[name])
                mark(dataset, name, (descriptions or {}).get(name))
            continue
        if exists and not whole:
            raw.update_many({}, [{"$set": {tmp: "$" + name}}])
        if any(isinstance(v, list) for v in vals) and all(
                isinstance(x, str) for v in vals if isinstance(v, list) for x in v):
            # declare list-of-strings fields up front: inferred from a first value of [] the
            # element type would be unknown and the App could not filter the field
            import fiftyone.core.fields as fof

            dataset.add_sample_field(tmp, fof.ListField, subfield=fof.StringField)
        collection.set_values(tmp, vals)
        mark(dataset, tmp, (descriptions or {}).get(name))
        if exists:
            dataset.delete_sample_field(name)
        dataset.rename_sample_field(tmp, name)


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
