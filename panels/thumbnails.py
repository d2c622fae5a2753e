"""The thumbnails of the cluster cards: which items (the stored representatives that are in the
view, nearest to the centroid first, else the cluster's first items in the view), their files
(the image, or in object view a small crop written once to the thumbnail folder) and the App
server's URLs for them."""
from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import urllib.parse

from bson import ObjectId

from .stored import clamp_level, cluster_key, item_prefix, list_path

logger = logging.getLogger(__name__)

N_THUMBS = 6
THUMB_SIZE = 96
ENV_THUMBS = "VISUAL_CURATION_THUMBS_DIR"


def media_url(filepath):
    """The App server's URL for a local file."""
    return "/media?filepath=" + urllib.parse.quote(str(filepath), safe="")


def thumbs_dir(dataset):
    from ..core import config as cfg

    root = os.environ.get(ENV_THUMBS) or os.path.join(
        cfg.fiftyone_config_dir(), "visual_curation", "thumbs")
    return os.path.join(root, str(dataset._dataset._doc.id))


def crop_thumbnail(dataset, filepath, box, label_id, size=THUMB_SIZE, pad=0.08):
    """A small JPEG of the (slightly padded) box ``[x, y, w, h]`` (relative) of ``filepath``,
    written once to the thumbnail cache; returns its path (None if the image is unreadable)."""
    x, y, w, h = (float(v) for v in box)
    sig = hashlib.sha1(f"{filepath}|{x:.5f},{y:.5f},{w:.5f},{h:.5f}|{size}".encode()).hexdigest()[:10]
    out_dir = thumbs_dir(dataset)
    out = os.path.join(out_dir, f"{label_id}_{sig}.jpg")
    if os.path.exists(out):
        return out
    from PIL import Image

    try:
        with Image.open(filepath) as im:
            im = im.convert("RGB")
            W, H = im.size
            px, py = pad * w, pad * h
            left = max(0, int(math.floor((x - px) * W)))
            top = max(0, int(math.floor((y - py) * H)))
            right = min(W, int(math.ceil((x + w + px) * W)))
            bottom = min(H, int(math.ceil((y + h + py) * H)))
            if right <= left or bottom <= top:
                return None
            crop = im.crop((left, top, right, bottom))
            scale = size / max(crop.size)
            if scale > 1:  # upscale tiny crops so that they are visible
                crop = crop.resize((max(1, round(crop.width * scale)),
                                    max(1, round(crop.height * scale))), Image.NEAREST)
            else:
                crop.thumbnail((size, size))
            os.makedirs(out_dir, exist_ok=True)
            tmp = f"{out}.{os.getpid()}.{threading.get_ident()}.tmp"
            crop.save(tmp, "JPEG", quality=88)
            os.replace(tmp, out)
    except Exception as e:  # noqa: BLE001 - a broken image must not break the panel
        logger.warning("cluster panel: cannot crop %s: %s", filepath, e)
        return None
    return out


def attach_thumbnails(view, cards, level, patches_field=None, n_thumbs=N_THUMBS):
    """Fills ``card["thumbs"]`` with up to ``n_thumbs`` representatives that are in the view
    (nearest to the centroid first); clusters whose stored representatives are all filtered
    out of the view get their first items in the view instead."""
    ds = view._dataset
    want = {}
    for c in cards:
        want[cluster_key(c["id"])] = c["representatives"][: max(n_thumbs * 2, n_thumbs)]
    all_ids = [i for ids in want.values() for i in ids]
    found = _lookup(view, all_ids, patches_field)  # id -> (filepath, box or None)
    missing = []
    for c in cards:
        thumbs = [i for i in want[cluster_key(c["id"])] if i in found][:n_thumbs]
        if not thumbs:
            missing.append(c)
        c["thumbs"] = [thumb(ds, i, *found[i], patches_field) for i in thumbs]
    if missing:
        extra = first_items(view, level, [c["id"] for c in missing], patches_field, n_thumbs)
        for c in missing:
            c["thumbs"] = [thumb(ds, i, fp, box, patches_field)
                           for i, fp, box in extra.get(c["id"], [])]
    for c in cards:
        c["thumbs"] = [t for t in c["thumbs"] if t["url"]]


def first_items(view, level, cluster_ids, patches_field, n):
    """``{cluster id: [(item id, filepath, box), ...]}``: the first ``n`` items in the view of
    each given cluster (clusters that the stored summary does not list, or whose
    representatives are all filtered out), in one scan."""
    if not cluster_ids:
        return {}
    pre_pipe, pre = item_prefix(view, patches_field)
    cp = f"{pre}vc_cluster_{clamp_level(level)}"
    item = {"i": "$" + (pre + "_id" if patches_field else "_id"), "f": "$filepath"}
    if patches_field:
        item["b"] = "$" + pre + "bounding_box"
    head = pre_pipe + [{"$match": {cp: {"$in": list(cluster_ids)}}}]
    try:
        docs = list(view._aggregate(pipeline=head + [
            {"$group": {"_id": "$" + cp, "x": {"$firstN": {"input": item, "n": int(n)}}}}]))
    except Exception:  # noqa: BLE001 - MongoDB < 5.2 has no $firstN
        docs = list(view._aggregate(pipeline=head + [
            {"$group": {"_id": "$" + cp, "x": {"$push": item}}},
            {"$project": {"x": {"$slice": ["$x", int(n)]}}}]))
    return {d["_id"]: [(str(x["i"]), x["f"], x.get("b")) for x in d.get("x") or []]
            for d in docs}


def thumb(ds, item_id, filepath, box, patches_field):
    if patches_field and box is not None:
        path = crop_thumbnail(ds, filepath, box, item_id)
        if path is None:
            return dict(id=item_id, filepath=filepath, url=None)
        return dict(id=item_id, filepath=filepath, url=media_url(path), crop=path)
    return dict(id=item_id, filepath=filepath, url=media_url(filepath))


def _oids(ids):
    out = []
    for i in ids:
        try:
            out.append(ObjectId(str(i)))
        except Exception:  # noqa: BLE001
            pass
    return out


def _lookup(view, ids, patches_field=None):
    """``{item id: (filepath, bounding box or None)}`` of the given items that are in the view."""
    if not ids:
        return {}
    oids = _oids(ids)
    if not patches_field:
        pipe = [{"$match": {"_id": {"$in": oids}}}, {"$project": {"filepath": 1}}]
        return {str(d["_id"]): (d["filepath"], None) for d in view._aggregate(pipeline=pipe)}
    lp = list_path(view._dataset, patches_field)
    pipe = [
        {"$match": {lp + "._id": {"$in": oids}}},
        {"$project": {"filepath": 1, "d": {"$filter": {
            "input": "$" + lp, "as": "d", "cond": {"$in": ["$$d._id", oids]}}}}},
    ]
    out = {}
    for doc in view._aggregate(pipeline=pipe):
        for d in doc.get("d") or []:
            out[str(d["_id"])] = (doc["filepath"], d.get("bounding_box"))
    return out
