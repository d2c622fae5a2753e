"""The search operators: find similar (samples, objects, a region, an uploaded image, a
cluster), text search, and the most unique samples; each puts its result in the grid."""
from __future__ import annotations

from dataclasses import dataclass

import fiftyone.operators.types as types

from ..core.analyzers import LEVELS
from . import results
from . import common as oc
from . import forms

MAX_K = 10000
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_BOX = [0.25, 0.25, 0.5, 0.5]
#: the number of results of find_similar and text_search by default
SIMILAR_K, TEXT_K = 50, 100
#: the cluster granularity of find_similar by default: the loosest
CLUSTER_LEVEL = 1
UNIQUE_THRESHOLD = 0.5
UNIQUE_VIEW_NAME = "unique samples"
UPLOAD_TYPES = ".png,.jpg,.jpeg,.webp,.gif,.bmp,.tif,.tiff"
#: where find_similar searches: never the selection (that is the query)
EMPTY_SEARCH = ("The target is empty: search the dataset, or a current view that has "
                "samples.")


# ----------------------------------------------------------------------------- query inputs

def uploaded_image(file):
    """The FileView payload (an ``UploadedFile`` dict, or a bare base64 string) → a PIL image,
    size- and type-checked. Raises ``ValueError`` with a readable message."""
    import base64
    import binascii
    import io

    from PIL import Image

    from ..core import images as vci

    content = file.get("content") if isinstance(file, dict) else file
    if not content or not isinstance(content, str):
        raise ValueError("Choose an image file to upload")
    if isinstance(file, dict) and file.get("size") and int(file["size"]) > MAX_UPLOAD_BYTES:
        raise ValueError("The uploaded file is larger than 20 MB")
    if content.startswith("data:") and "," in content[:200]:
        content = content.split(",", 1)[1]
    if len(content) > MAX_UPLOAD_BYTES * 4 // 3 + 16:
        raise ValueError("The uploaded file is larger than 20 MB")
    try:
        data = base64.b64decode(content, validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("The uploaded file could not be read (not base64 content)") from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError("The uploaded file is larger than 20 MB")
    try:
        fmt = Image.open(io.BytesIO(data)).format
    except Exception:  # noqa: BLE001
        fmt = None
    if fmt not in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"):
        raise ValueError("The uploaded file is not a PNG, JPEG, WebP, GIF, BMP or TIFF image")
    try:
        return vci.decode(data)
    except vci.ImageError as e:
        raise ValueError(f"The uploaded image cannot be used: {e}") from e


def checked_box(box):
    """``[x, y, w, h]`` as floats when it is a box inside the image, else None."""
    try:
        box = [float(v) for v in (box or [])]
    except (TypeError, ValueError):
        return None
    if len(box) != 4 or not all(0 <= v <= 1 for v in box) or box[2] <= 0 or box[3] <= 0 \
            or box[0] + box[2] > 1 + 1e-6 or box[1] + box[3] > 1 + 1e-6:
        return None
    return box


def valid_id(value):
    from ..core import config as cfg

    try:
        return cfg.check_id(value)
    except ValueError:
        return None


def selected_objects(ctx):
    """``(Detections field, label ids)`` of the selected objects: labels selected in the App, or
    patches ticked in a patches view (a patch's id is its label's id)."""
    labels = ctx.selected_labels or []
    if labels:
        field = labels[0].get("field")
        return field, [lab["label_id"] for lab in labels if lab.get("field") == field]
    view = ctx.view
    if ctx.selected and getattr(view, "_is_patches", False):
        return getattr(view, "patches_field", None), list(ctx.selected)
    return None, []


def k_input(inputs, k, default):
    """The number of results (``k``: the resolved value)."""
    prop = inputs.int("k", default=default, min=1, max=MAX_K, label="Number of results",
                      description="The grid shows this many nearest samples, nearest first")
    forms.check(inputs, prop, oc.number_problem(k, 1, MAX_K, integer=True,
                                                subject="Number of results"))


# ----------------------------------------------------------------------------- find similar

@dataclass(frozen=True)
class SimilarSettings:
    source: str
    default_source: str
    #: source "selected_labels": the objects' Detections field and label ids
    patches_field: str | None
    label_ids: list
    #: source "region": the sample (default: the one open in the modal) and the checked box
    sample_id: object
    default_sample_id: str
    box: list | None
    file: object
    level: object
    cluster: object
    k: object


def similar_settings(ctx):
    """``ctx.params`` with their defaults: the query source (selected objects, else selected
    samples, else a region of the sample open in the modal), its inputs, the number of
    results."""
    p = ctx.params
    field, label_ids = selected_objects(ctx)
    if label_ids:
        default = "selected_labels"
    elif ctx.selected:
        default = "selected"
    elif ctx.current_sample:
        default = "region"
    else:
        default = "selected"
    source = p.get("source", default)
    objects = source == "selected_labels"
    sample_id = ctx.current_sample or ""
    return SimilarSettings(
        source=source, default_source=default, patches_field=field if objects else None,
        label_ids=label_ids if objects else [], sample_id=p.get("sample_id", sample_id),
        default_sample_id=sample_id, box=checked_box(p.get("box", DEFAULT_BOX)),
        file=p.get("file"), level=p.get("level", CLUSTER_LEVEL), cluster=p.get("cluster"),
        k=p.get("k", SIMILAR_K))


class FindSimilar(forms.FormOperator):
    form_label = "Find similar"

    op_name = "find_similar"
    op_label = "Visual Curation: find similar"
    op_description = ("Nearest samples to the selected samples or objects, a crop region, an "
                      "uploaded image or a cluster → the grid, nearest first")

    def form(self, ctx, inputs):
        from ..core.similarity import embeddings_runs

        if not forms.has_dataset(ctx, inputs):
            return
        s = similar_settings(ctx)
        src = types.RadioGroup()
        src.add_choice("selected", label="Selected samples",
                       description="Their mean embedding is the query")
        src.add_choice("selected_labels", label="Selected objects",
                       description="Objects selected in a patches view (Object view embeddings)")
        src.add_choice("region", label="A region of a sample",
                       description="A box [x, y, w, h] of the sample open in the modal")
        src.add_choice("upload", label="An uploaded image")
        src.add_choice("cluster", label="A cluster", description="Its members' mean embedding")
        inputs.enum("source", src.values(), default=s.default_source, label="Query", view=src)

        if s.source == "selected_labels" and not s.label_ids:
            forms.error_form(inputs, "Select objects first: in a patches view of a Detections "
                                     "field, tick the patches (or click objects in the "
                                     "modal), then run this again")
            return
        need_clip = s.source in ("region", "upload")
        if not embeddings_runs(ctx.dataset, s.patches_field, need_text=need_clip):
            forms.error_form(inputs, oc.missing_embeddings_message(s.patches_field, need_clip))
            return
        if s.source != "selected_labels":
            results.target_input(ctx, inputs, "Search", allow_selected_samples=False)
            if len(results.target(ctx)) == 0:
                forms.error_form(inputs, EMPTY_SEARCH)
                return

        if s.source == "selected" and not ctx.selected:
            forms.error_form(inputs, "Select one or more samples in the grid first (tick their "
                                     "checkboxes), then run this again")
        elif s.source == "region":
            self._region_inputs(ctx, inputs, s)
        elif s.source == "upload":
            prop = inputs.define_property(
                "file", types.UploadedFile(), label="Image file", required=True,
                view=types.FileView(label="Image (PNG, JPEG, WebP, GIF, BMP, TIFF; ≤ 20 MB)",
                                    max_size=MAX_UPLOAD_BYTES, types=UPLOAD_TYPES,
                                    max_size_error_message="The file is larger than 20 MB"))
            if s.file:
                try:
                    uploaded_image(s.file)
                except ValueError as e:
                    forms.invalid(inputs, prop, str(e))
        elif s.source == "cluster":
            self._cluster_inputs(ctx, inputs, s)
        k_input(inputs, s.k, SIMILAR_K)

    @staticmethod
    def _region_inputs(ctx, inputs, s):
        prop = inputs.str("sample_id", label="Sample id", default=s.default_sample_id,
                          description="The sample open in the modal, by default")
        if not s.sample_id:
            forms.invalid(inputs, prop, "Open a sample (or give its id) to search by a region")
        elif not valid_id(s.sample_id) or len(ctx.dataset.select(s.sample_id)) == 0:
            forms.invalid(inputs, prop, f"No sample with id {str(s.sample_id)[:40]!r} in this "
                                        "dataset")
        bprop = inputs.list("box", types.Number(), label="Box [x, y, w, h]",
                            description="relative coordinates in [0, 1]", default=DEFAULT_BOX)
        if s.box is None:
            forms.invalid(inputs, bprop, "The box must be four numbers [x, y, w, h] in [0, 1] "
                                         "with w, h > 0, inside the image")

    @staticmethod
    def _cluster_inputs(ctx, inputs, s):
        from ..core.curation import cluster_members

        lprop = inputs.int("level", default=CLUSTER_LEVEL, min=1, max=LEVELS,
                           label=f"Granularity (1-{LEVELS})",
                           description=f"1 loosest … {LEVELS} strictest")
        cprop = inputs.int("cluster", required=True, label="Cluster id",
                           description="A value of vc_cluster_<granularity>")
        if not isinstance(s.level, int) or not 1 <= s.level <= LEVELS:
            forms.invalid(inputs, lprop, "Granularity must be "
                          + ", ".join(str(i) for i in range(1, LEVELS)) + f" or {LEVELS}")
        elif not oc.has_sample_field(ctx.dataset, f"vc_cluster_{s.level}"):
            forms.error_form(inputs, oc.missing_analysis_message(f"vc_cluster_{s.level}",
                                                                 "clusters"))
        elif s.cluster is not None and not cluster_members(ctx.dataset, s.level, s.cluster,
                                                           limit=1):
            forms.invalid(inputs, cprop, f"No samples in cluster {s.cluster} at granularity "
                                         f"{s.level}")

    def execute(self, ctx):
        from ..core import similarity as vcs
        from ..core.curation import cluster_members

        s = similar_settings(ctx)
        kw = {}
        if s.source == "selected_labels":
            kw["sample_id"] = s.label_ids
            collection = ctx.dataset  # the patches view is rebuilt from the dataset
        else:
            collection = results.target(ctx)
            if s.source == "selected":
                kw["sample_id"] = list(ctx.selected)
            elif s.source == "region":
                kw["sample_id"] = s.sample_id
                kw["box"] = s.box
            elif s.source == "upload":
                kw["image"] = uploaded_image(s.file)
            elif s.source == "cluster":
                kw["sample_id"] = cluster_members(ctx.dataset, int(s.level), s.cluster,
                                                  limit=1000)
        res = vcs.search(collection, k=int(s.k), patches_field=s.patches_field, **kw)
        what = {"selected": "the selected samples", "selected_labels": "the selected objects",
                "region": "a region", "upload": "your uploaded image",
                "cluster": f"cluster {s.cluster}"}.get(s.source, "your query")
        return show_search(ctx, res, f"{len(res):,} nearest to {what}")


def show_search(ctx, res, what, query=""):
    """Puts a search result in the grid (nothing is written on the samples), remembers it as
    this plugin's result, says how good the best match is; the operator's result."""
    results.show(ctx, res.view, f"{what} (your last search)")
    out = {"count": len(res), "best_similarity": None if res.best is None
           else round(res.best, 4)}
    if res.quality is not None:
        out["match"] = res.quality.to_dict()
        ctx.ops.notify(res.quality.message(query, len(res)),
                       variant="success" if res.quality.good else "warning")
    return out


# ----------------------------------------------------------------------------- text search

def text_settings(ctx):
    """``(prompt as given, stripped; k)``."""
    return str(ctx.params.get("text") or "").strip(), ctx.params.get("k", TEXT_K)


class TextSearch(forms.FormOperator):
    form_label = "Text search"

    op_name = "text_search"
    op_label = "Visual Curation: text search"
    op_description = "Sort the grid by CLIP similarity to a text prompt"

    def form(self, ctx, inputs):
        from ..core.similarity import embeddings_runs

        if not forms.has_dataset(ctx, inputs):
            return
        if not embeddings_runs(ctx.dataset, need_text=True):
            forms.error_form(inputs, oc.missing_embeddings_message(need_clip=True))
            return
        results.target_input(ctx, inputs, "Search")
        if len(results.target(ctx)) == 0:
            forms.error_form(inputs, oc.EMPTY_TARGET.format(what="samples"))
            return
        text, k = text_settings(ctx)
        prop = inputs.str("text", required=True, label="Prompt",
                          description='What to look for, e.g. "a photo of a sneaker"')
        if ctx.params.get("text") is not None and not text:
            forms.invalid(inputs, prop, "Type a prompt")
        k_input(inputs, k, TEXT_K)

    def execute(self, ctx):
        from ..core import similarity as vcs

        text, k = text_settings(ctx)
        res = vcs.search(results.target(ctx), text=text[:1000], k=int(k))
        return show_search(ctx, res, f"{len(res):,} results for {text[:60]!r}", query=text)


# ----------------------------------------------------------------------------- most unique

@dataclass(frozen=True)
class UniqueSettings:
    threshold_mode: bool
    threshold: object
    count: object
    default_count: int
    save: bool
    view_name: str


def unique_settings(ctx, target):
    """``ctx.params`` with their defaults: the N most unique (half the ``target``) unless a
    threshold is asked for, optionally saved as a view ("unique samples")."""
    from ..core.curation import default_unique_count

    p = ctx.params
    default_count = default_unique_count(target)
    return UniqueSettings(
        threshold_mode=p.get("mode") == "threshold",
        threshold=p.get("threshold", UNIQUE_THRESHOLD), count=p.get("count", default_count),
        default_count=default_count, save=bool(p.get("save")),
        view_name=forms.name_param(ctx, "view_name", UNIQUE_VIEW_NAME))


class SelectUniques(forms.FormOperator):
    form_label = "Select unique samples"

    op_name = "select_uniques"
    op_label = "Visual Curation: select unique samples"
    op_description = ("Keep the N most unique samples (vc_uniqueness), or those scoring at "
                      "least a threshold, as the grid (optionally a saved view)")

    def form(self, ctx, inputs):
        view = forms.target_view(ctx, inputs)
        if view is None:
            return
        if not oc.has_sample_field(ctx.dataset, "vc_uniqueness"):
            forms.error_form(inputs, oc.missing_analysis_message("vc_uniqueness", "uniqueness"))
            return
        s = unique_settings(ctx, view)
        mode = types.RadioGroup(orientation="horizontal")
        mode.add_choice("top", label="The N most unique")
        mode.add_choice("threshold", label="Uniqueness ≥ a threshold")
        inputs.enum("mode", mode.values(), default="top", label="Keep", view=mode)
        if s.threshold_mode:
            prop = inputs.float("threshold", default=UNIQUE_THRESHOLD, min=0.0, max=1.0,
                                label="Minimum uniqueness",
                                description="0 highly redundant … 1 highly unique")
            forms.check(inputs, prop, oc.number_problem(s.threshold, 0, 1,
                                                        subject="The threshold"))
        else:
            prop = inputs.int("count", default=s.default_count, min=1, label="How many",
                              description=f"Of the {len(view)} target samples")
            forms.check(inputs, prop, oc.number_problem(s.count, 1, integer=True,
                                                        subject="How many"))
        inputs.bool("save", default=False, label="Also save it as a saved view")
        if s.save:
            forms.name_input(inputs, "view_name", "Saved view name", s.view_name,
                             UNIQUE_VIEW_NAME, ctx.dataset.has_saved_view, "saved view")

    def execute(self, ctx):
        from ..core.curation import most_unique

        target = results.target(ctx)
        s = unique_settings(ctx, target)
        if s.threshold_mode:
            view = most_unique(target, threshold=s.threshold)
        else:
            view = most_unique(target, count=s.count)
        saved = None
        if s.save:
            saved = s.view_name
            ctx.dataset.save_view(saved, view,
                                  description="Visual Curation: the most unique samples")
            ctx.ops.set_view(name=saved)
        else:
            results.show(ctx, view, f"the {len(view):,} most unique samples")
        return {"count": len(view), "saved_view": saved}
