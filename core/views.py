"""FiftyOne views as plain data: the collection a generated view comes from, and comparable,
hashable forms of a view (to recognise a view set earlier, and to key caches)."""
from __future__ import annotations

import json


def source_collection(view):
    """The collection the panel reads: a patches/frames/clips view is replaced by the
    collection it was generated from (the ``vc_`` fields live there)."""
    seen = 0
    while getattr(view, "_is_generated", False) and seen < 5:
        src = getattr(view, "_source_collection", None)
        if src is None:
            break
        view = src
        seen += 1
    return view


def serialize_view(view, include_uuids=True):
    """The stage list of a view (``[]`` for a whole dataset)."""
    import fiftyone.core.view as fov

    if isinstance(view, fov.DatasetView):
        return view._serialize(include_uuids=include_uuids)
    return []


def is_whole(view):
    """Whether the view is the whole dataset (no stages, no sidebar filters)."""
    return not serialize_view(view)


def view_key(view):
    """A hashable description of a view (dataset + stages, without stage uuids)."""
    return (view._dataset.name,
            json.dumps(serialize_view(view, include_uuids=False), sort_keys=True, default=str))


def stage_signature(stages):
    """A comparable form of a serialized view (list of stage dicts), ignoring stage uuids."""
    out = []
    for s in stages or []:
        if isinstance(s, dict):
            out.append(json.dumps([s.get("_cls"), s.get("kwargs")], sort_keys=True, default=str))
        else:
            out.append(str(s))
    return out
