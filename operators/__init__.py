"""App operators: thin wrappers over :mod:`visual_curation.core` and FiftyOne views.

Each form checks its input in ``resolve_input`` (unknown or wrong-typed field, empty target,
missing embeddings or analyses, a user's own field in the way) and explains what to do next, so
``execute`` only runs what can succeed. Long runs (embeddings, analyses) are generators that
report progress and may be delegated.

The target (dataset / current view / selected samples) is FiftyOne's own: calling
``ctx.target_view()`` in ``resolve_input`` makes FiftyOne add its target input to the form.
"""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import common as oc

from ..core.analyzers import ANALYSES, ISSUES, LABEL_ANALYSES  # noqa: E402
SIMILARITY_FIELD = "vc_similarity"
MAX_K = 10000


def _core():
    from .. import core  # imported lazily: torch/open_clip load only when an operator runs

    return core


def _default_model(dataset):
    best = None
    for conf in oc.embeddings_runs(dataset, need_clip=True):
        key = conf.get("model_key")
        ts = None
        try:
            from ..core.embeddings import embeddings_run_key

            ts = dataset.get_run_info(embeddings_run_key(key, conf.get("kind"))).timestamp
        except Exception:  # noqa: BLE001
            pass
        if best is None or (ts is not None and (best[0] is None or ts > best[0])):
            best = (ts, conf)
    if best:
        return best[1].get("model") or "ViT-B-32", best[1].get("pretrained")
    return "ViT-B-32", "laion2b_s34b_b79k"


def _target(ctx, inputs):
    """``ctx.target_view()`` (which adds FiftyOne's target input to the form), or None after
    showing why there is nothing to run on."""
    if ctx.dataset is None:
        oc.error_form(inputs, "Open a dataset first")
        return None
    view = ctx.target_view()
    if len(view) == 0:
        oc.error_form(inputs, "The target is empty: choose a target (dataset, current view or "
                              "selected samples) that has samples.")
        return None
    if ctx.dataset.media_type == "video":
        oc.error_form(inputs, "Video dataset: run 'Visual Curation: extract core frames' "
                              "first, then run this on the core-frames dataset.")
        return None
    return view


def _patches_param(ctx):
    """The Detections field of an Object-view run (its form default: the first one)."""
    if ctx.params.get("kind") != "objects":
        return None
    given = ctx.params.get("patches_field")
    if given:
        return given
    dets = oc.detection_fields(ctx.dataset)
    return dets[0] if dets else None


def _model_params(ctx):
    """``(model, pretrained)`` as the form shows them (defaults: the last CLIP model used)."""
    model, pretrained = _default_model(ctx.dataset)
    model = str(ctx.params.get("model", model) or "").strip()
    pretrained = str(ctx.params.get("pretrained", pretrained) or "").strip() or None
    return model, pretrained


def _kind_choice(inputs, ctx, label):
    """The image / object view radio and, for objects, the Detections field. Returns
    ``(patches_field or None, ok)``."""
    kind = types.RadioGroup(orientation="horizontal")
    kind.add_choice("images", label="Image view")
    kind.add_choice("objects", label="Object view (detection crops)")
    inputs.enum("kind", kind.values(), default="images", label=label, view=kind)
    if ctx.params.get("kind") != "objects":
        return None, True
    dets = oc.detection_fields(ctx.dataset)
    if not dets:
        oc.error_form(inputs, "Object view needs a Detections field on the dataset; choose "
                              "Image view.")
        return None, False
    given = ctx.params.get("patches_field")
    prop = oc.add_choice(inputs, "patches_field", dets, "Detections field", default=dets[0],
                         extra=[given] if given else ())
    if given and given not in dets:
        import fiftyone.core.labels as fol

        oc.invalid(inputs, prop, oc.label_field_problem(ctx.dataset, given, fol.Detections))
        return None, False
    return given or dets[0], True


# ============================================================================== embeddings

class ComputeEmbeddings(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_embeddings",
            label="Visual Curation: compute embeddings",
            description="CLIP embeddings of images or object crops into LanceDB (incremental: "
                        "only new or changed files are embedded)",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = _target(ctx, inputs)
        if view is None:
            return types.Property(inputs, view=types.View(label="Compute embeddings"))
        inputs.md("Embeds every image (or every box of a Detections field) of the target into "
                  "LanceDB. Re-running embeds only what changed. Next step: **run analyses**.",
                  name="vc_help")
        default_model, default_pretrained = _default_model(ctx.dataset)
        m = inputs.str("model", default=default_model, label="Model",
                       description="open_clip architecture (ViT-B-32, ViT-L-14…), or 'demo' for "
                                   "the offline model shipped with the plugin")
        p = inputs.str("pretrained", default=default_pretrained or "", required=False,
                       label="Pretrained weights",
                       description="open_clip tag (laion2b_s34b_b79k) or a local checkpoint path; "
                                   "leave empty for 'demo'")
        model, pretrained = _model_params(ctx)
        problem = oc.checkpoint_problem(model, pretrained)
        if problem:
            oc.invalid(inputs, p, problem)
        if not model:
            oc.invalid(inputs, m, "Give a model: 'demo', or an open_clip architecture")
        patches, ok = _kind_choice(inputs, ctx, "Embed")
        if not ok:
            return types.Property(inputs, view=types.View(label="Compute embeddings"))
        bs = inputs.int("batch_size", default=32, label="Batch size",
                        description="Images per forward pass (lower it if memory runs out)")
        if not isinstance(ctx.params.get("batch_size", 32), int) or \
                not 1 <= ctx.params.get("batch_size", 32) <= 4096:
            oc.invalid(inputs, bs, "Batch size must be a whole number from 1 to 4096")
        conflict = oc.field_conflict(ctx.dataset, ["vc_error"])
        if conflict:
            oc.error_form(inputs, conflict)
        oc.delegation_choice(inputs, ctx, default_delegate=len(view) > 5000)
        return types.Property(inputs, view=types.View(label="Compute embeddings"))

    def resolve_delegation(self, ctx):
        return oc.resolve_delegation(ctx)

    def execute(self, ctx):
        core = _core()
        view = ctx.target_view()
        p = ctx.params
        patches = _patches_param(ctx)
        model, pretrained = _model_params(ctx)
        result = yield from oc.run_with_progress(
            ctx, lambda progress: core.compute_embeddings(
                view, model=model, pretrained=pretrained,
                patches_field=patches, batch_size=int(p.get("batch_size") or 32),
                progress=progress),
            "Embedding")
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(f"Embeddings: {result}. Next: 'Visual Curation: run analyses'",
                                 variant="success")
        return {"summary": str(result), "embedded": result.embedded, "errors": result.errors}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)


# ============================================================================== analyses

def _label_param(ctx):
    """The label field of an Image-view analysis (its form default: the first Classification
    field), or None."""
    if "label_field" in ctx.params:
        return ctx.params.get("label_field") or None
    labels = oc.label_fields(ctx.dataset)
    return labels[0] if labels else None


class RunAnalyses(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="run_analyses",
            label="Visual Curation: run analyses",
            description="Clusters, duplicates, uniqueness, mislabels, outliers and image quality "
                        "→ vc_ fields (filter the sidebar by vc_issues)",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        form = types.View(label="Run analyses")
        inputs = types.Object()
        view = _target(ctx, inputs)
        if view is None:
            return types.Property(inputs, view=form)
        inputs.md("Reads the embeddings and writes `vc_cluster_1..5`, `vc_dup_group`, "
                  "`vc_duplicate`, `vc_uniqueness`, `vc_mislabel`, `vc_outlier`, `vc_blur`, "
                  "`vc_dark`, `vc_bright` and `vc_issues` (the issues whose score ≥ its "
                  "threshold).", name="vc_help")
        patches, ok = _kind_choice(inputs, ctx, "Analyse")
        if not ok:
            return types.Property(inputs, view=form)
        if not oc.embeddings_runs(ctx.dataset, patches):
            oc.error_form(inputs, oc.missing_embeddings_message(patches))
            return types.Property(inputs, view=form)

        label_field = patches
        if patches is None:
            import fiftyone.core.labels as fol

            labels = oc.label_fields(ctx.dataset)
            given = ctx.params.get("label_field")
            prop = oc.add_choice(
                inputs, "label_field", [("", "(none: skip mislabels and outliers)")] + labels,
                "Label field", description="Classification field for mislabels and outliers",
                default=labels[0] if labels else "", extra=[given] if given else ())
            label_field = given if given is not None else (labels[0] if labels else "")
            if label_field and label_field not in labels:
                oc.invalid(inputs, prop, oc.label_field_problem(
                    ctx.dataset, label_field, fol.Classification,
                    hint=" (for Detections, choose Object view)"))
                return types.Property(inputs, view=form)

        default = [a for a in ANALYSES if label_field or a not in LABEL_ANALYSES]
        dd = types.Dropdown(multiple=True, label="Analyses")
        for a in ANALYSES:
            dd.add_choice(a, label=a)
        prop = inputs.list("analyses", types.String(), default=default, label="Analyses",
                           description="All by default; mislabels and outliers need a label "
                                       "field", view=dd)
        chosen = ctx.params.get("analyses", default) or []
        unknown = [a for a in chosen if a not in ANALYSES]
        if unknown:
            oc.invalid(inputs, prop, f"Unknown analyses {unknown}: choose among "
                                     f"{', '.join(ANALYSES)}")
        elif not chosen:
            oc.invalid(inputs, prop, "Choose at least one analysis")
        elif not label_field and all(a in LABEL_ANALYSES for a in chosen):
            oc.invalid(inputs, prop, "Mislabels and outliers need a label field: choose one, "
                                     "or add other analyses")
        elif not label_field and any(a in LABEL_ANALYSES for a in chosen):
            inputs.view("vc_skip", types.Notice(
                label="Mislabels and outliers will be skipped: no label field"))

        th = types.Object()
        for issue in ISSUES:
            if issue != "duplicate":
                th.float(issue, default=0.5, label=f"{issue}", min=0.0, max=1.0,
                         description=f"vc_issues gets '{issue}' when vc_{issue} ≥ this")
        inputs.define_property("thresholds", th, label="Thresholds for vc_issues",
                               description="Scores are confidences in [0, 1]; 0.5 by default")

        from ..core.analyze import DESCRIPTIONS

        prefix = ""
        if patches:
            from ..core.fields import label_list_path

            prefix = label_list_path(ctx.dataset, patches) + "."
        conflict = oc.field_conflict(ctx.dataset, list(DESCRIPTIONS), prefix=prefix)
        if conflict:
            oc.error_form(inputs, conflict)
        oc.delegation_choice(inputs, ctx, default_delegate=len(view) > 50000)
        return types.Property(inputs, view=form)

    def resolve_delegation(self, ctx):
        return oc.resolve_delegation(ctx)

    def execute(self, ctx):
        core = _core()
        view = ctx.target_view()
        p = ctx.params
        patches = _patches_param(ctx)
        label_field = patches or _label_param(ctx)
        analyses = [a for a in (p.get("analyses") or ANALYSES) if a in ANALYSES]
        if not label_field:
            analyses = [a for a in analyses if a not in LABEL_ANALYSES]
        thresholds = {k: float(v) for k, v in (p.get("thresholds") or {}).items()
                      if k in ISSUES and v is not None}
        summary = yield from oc.run_with_progress(
            ctx, lambda progress: core.analyze(
                view, label_field=label_field, patches_field=patches, analyses=analyses,
                thresholds=thresholds, progress=progress),
            "Analysing")
        if not patches:
            oc.declare_issue_list_type(ctx.dataset)
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            issues = ", ".join(f"{k}: {v}" for k, v in (summary.get("issues") or {}).items())
            yield ctx.ops.notify(f"Analyses done ({issues}). Filter the sidebar by vc_issues, "
                                 "or open the Visual Curation panel", variant="success")
        return {"issues": summary.get("issues", {}), "seconds": summary.get("seconds")}


# ============================================================================== similarity

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_BOX = [0.25, 0.25, 0.5, 0.5]
UPLOAD_TYPES = ".png,.jpg,.jpeg,.webp,.gif,.bmp,.tif,.tiff"


def _uploaded_image(file):
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


def _check_box(box):
    try:
        box = [float(v) for v in (box or [])]
    except (TypeError, ValueError):
        return None
    if len(box) != 4 or not all(0 <= v <= 1 for v in box) or box[2] <= 0 or box[3] <= 0 \
            or box[0] + box[2] > 1 + 1e-6 or box[1] + box[3] > 1 + 1e-6:
        return None
    return box


def _valid_id(value):
    from ..core import config as cfg

    try:
        return cfg.check_id(value)
    except ValueError:
        return None


def _k_input(inputs, ctx, default):
    prop = inputs.int("k", default=default, min=1, max=MAX_K, label="Number of results",
                      description="The grid shows this many nearest samples, nearest first")
    k = ctx.params.get("k", default)
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        oc.invalid(inputs, prop, f"Number of results must be a whole number from 1 to {MAX_K}")


class FindSimilar(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="find_similar",
            label="Visual Curation: find similar",
            description="Nearest samples to the selected samples or objects, a crop region, an "
                        "uploaded image or a cluster → the grid, nearest first",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        form = types.View(label="Find similar")
        inputs = types.Object()
        if ctx.dataset is None:
            oc.error_form(inputs, "Open a dataset first")
            return types.Property(inputs, view=form)
        src = types.RadioGroup()
        src.add_choice("selected", label="Selected samples",
                       description="Their mean embedding is the query")
        src.add_choice("selected_labels", label="Selected objects",
                       description="Objects selected in a patches view (Object view embeddings)")
        src.add_choice("region", label="A region of a sample",
                       description="A box [x, y, w, h] of the sample open in the modal")
        src.add_choice("upload", label="An uploaded image")
        src.add_choice("cluster", label="A cluster", description="Its members' mean embedding")
        if _selected_objects(ctx)[1]:
            default = "selected_labels"
        elif ctx.selected:
            default = "selected"
        elif ctx.current_sample:
            default = "region"
        else:
            default = "selected"
        inputs.enum("source", src.values(), default=default, label="Query", view=src)
        source = ctx.params.get("source", default)

        patches = None
        if source == "selected_labels":
            patches, label_ids = _selected_objects(ctx)
            if not label_ids:
                oc.error_form(inputs, "Select objects first: in a patches view of a Detections "
                                      "field, tick the patches (or click objects in the "
                                      "modal), then run this again")
                return types.Property(inputs, view=form)
        need_clip = source in ("region", "upload")
        if not oc.embeddings_runs(ctx.dataset, patches, need_clip=need_clip):
            oc.error_form(inputs, oc.missing_embeddings_message(patches, need_clip))
            return types.Property(inputs, view=form)

        # where to search: never "the selection" (that is the query)
        if source != "selected_labels":
            inputs.view_target(ctx, allow_selected_samples=False, action_description="Search")
            if len(ctx.target_view()) == 0:
                oc.error_form(inputs, "The target is empty: search the dataset, or a current "
                                      "view that has samples.")
                return types.Property(inputs, view=form)

        if source == "selected" and not ctx.selected:
            oc.error_form(inputs, "Select one or more samples in the grid first (tick their "
                                  "checkboxes), then run this again")
        elif source == "region":
            prop = inputs.str("sample_id", label="Sample id",
                              default=ctx.current_sample or "",
                              description="The sample open in the modal, by default")
            sid = ctx.params.get("sample_id", ctx.current_sample or "")
            if not sid:
                oc.invalid(inputs, prop, "Open a sample (or give its id) to search by a region")
            elif not _valid_id(sid) or len(ctx.dataset.select(sid)) == 0:
                oc.invalid(inputs, prop, f"No sample with id {str(sid)[:40]!r} in this dataset")
            bprop = inputs.list("box", types.Number(), label="Box [x, y, w, h]",
                                description="relative coordinates in [0, 1]",
                                default=DEFAULT_BOX)
            if _check_box(ctx.params.get("box", DEFAULT_BOX)) is None:
                oc.invalid(inputs, bprop, "The box must be four numbers [x, y, w, h] in [0, 1] "
                                          "with w, h > 0, inside the image")
        elif source == "upload":
            prop = inputs.define_property(
                "file", types.UploadedFile(), label="Image file", required=True,
                view=types.FileView(label="Image (PNG, JPEG, WebP, GIF, BMP, TIFF; ≤ 20 MB)",
                                    max_size=MAX_UPLOAD_BYTES, types=UPLOAD_TYPES,
                                    max_size_error_message="The file is larger than 20 MB"))
            if ctx.params.get("file"):
                try:
                    _uploaded_image(ctx.params["file"])
                except ValueError as e:
                    oc.invalid(inputs, prop, str(e))
        elif source == "cluster":
            lprop = inputs.int("level", default=1, min=1, max=5, label="Granularity (1-5)",
                               description="1 loosest … 5 strictest")
            cprop = inputs.int("cluster", required=True, label="Cluster id",
                               description="A value of vc_cluster_<granularity>")
            level = ctx.params.get("level", 1)
            if not isinstance(level, int) or not 1 <= level <= 5:
                oc.invalid(inputs, lprop, "Granularity must be 1, 2, 3, 4 or 5")
            elif not oc.has_sample_field(ctx.dataset, f"vc_cluster_{level}"):
                oc.error_form(inputs, oc.missing_analysis_message(f"vc_cluster_{level}",
                                                                  "clusters"))
            elif ctx.params.get("cluster") is not None and not _cluster_members(
                    ctx.dataset, level, ctx.params["cluster"], limit=1):
                oc.invalid(inputs, cprop, f"No samples in cluster {ctx.params['cluster']} at "
                                          f"granularity {level}")
        _k_input(inputs, ctx, 50)
        return types.Property(inputs, view=form)

    def execute(self, ctx):
        from ..core import similarity as vcs

        p = ctx.params
        k = int(p.get("k") or 50)
        source = p.get("source", "selected")
        kw = {}
        patches = None
        if source == "selected_labels":
            patches, kw["sample_id"] = _selected_objects(ctx)
            collection = ctx.dataset  # the patches view is rebuilt from the dataset
        else:
            collection = ctx.target_view()
            if source == "selected":
                kw["sample_id"] = list(ctx.selected)
            elif source == "region":
                kw["sample_id"] = p.get("sample_id") or ctx.current_sample
                kw["box"] = _check_box(p.get("box", DEFAULT_BOX))
            elif source == "upload":
                kw["image"] = _uploaded_image(p.get("file"))
            elif source == "cluster":
                kw["sample_id"] = _cluster_members(ctx.dataset, int(p.get("level") or 1),
                                                   p.get("cluster"), limit=1000)
        result = vcs.find_similar(collection, k=k, patches_field=patches,
                                  dist_field=SIMILARITY_FIELD, **kw)
        if patches:
            # core builds the patches before writing the distances onto the detections, and a
            # patches view keeps the copy it was built from: regenerate it so that the grid
            # shows vc_similarity (patch ids are the label ids, so the order is kept)
            result = ctx.dataset.to_patches(patches).select(result.values("id"), ordered=True)
        ctx.ops.reload_dataset()
        ctx.ops.set_view(view=result)
        return {"count": len(result)}


def _selected_objects(ctx):
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


def _cluster_members(dataset, level, cluster, limit=1000):
    from fiftyone import ViewField as F

    return dataset.match(F(f"vc_cluster_{int(level)}") == cluster).limit(limit).values("id")


class TextSearch(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="text_search",
            label="Visual Curation: text search",
            description="Sort the grid by CLIP similarity to a text prompt",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        form = types.View(label="Text search")
        inputs = types.Object()
        if ctx.dataset is None:
            oc.error_form(inputs, "Open a dataset first")
            return types.Property(inputs, view=form)
        if not oc.embeddings_runs(ctx.dataset, need_clip=True):
            oc.error_form(inputs, oc.missing_embeddings_message(need_clip=True))
            return types.Property(inputs, view=form)
        # FiftyOne adds its target input: search the dataset, the current view or a selection
        if len(ctx.target_view()) == 0:
            oc.error_form(inputs, "The target is empty: choose a target (dataset, current view "
                                  "or selected samples) that has samples.")
            return types.Property(inputs, view=form)
        prop = inputs.str("text", required=True, label="Prompt",
                          description='What to look for, e.g. "a photo of a sneaker"')
        if ctx.params.get("text") is not None and not str(ctx.params["text"]).strip():
            oc.invalid(inputs, prop, "Type a prompt")
        _k_input(inputs, ctx, 100)
        return types.Property(inputs, view=form)

    def execute(self, ctx):
        from ..core import similarity as vcs

        text = (ctx.params.get("text") or "").strip()
        k = int(ctx.params.get("k") or 100)
        view = vcs.find_similar(ctx.target_view(), text=text[:1000], k=k,
                                dist_field=SIMILARITY_FIELD)
        ctx.ops.reload_dataset()
        ctx.ops.set_view(view=view)
        return {"count": len(view)}


# ============================================================================== curation views

def _view_name_input(inputs, ctx, name, label, default, exists, what):
    prop = inputs.str(name, label=label, default=default)
    value = str(ctx.params.get(name, default) or "").strip()
    if not value:
        oc.invalid(inputs, prop, f"Give the {what} a name")
    elif exists(value):
        oc.invalid(inputs, prop, f"A {what} named {value!r} already exists: choose another name")
    return prop


def _default_count(view):
    return max(1, len(view) // 2)


class SelectUniques(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="select_uniques",
            label="Visual Curation: select unique samples",
            description="Keep the N most unique samples (vc_uniqueness), or those scoring at "
                        "least a threshold, as the grid (optionally a saved view)",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        form = types.View(label="Select unique samples")
        inputs = types.Object()
        view = _target(ctx, inputs)
        if view is None:
            return types.Property(inputs, view=form)
        if not oc.has_sample_field(ctx.dataset, "vc_uniqueness"):
            oc.error_form(inputs, oc.missing_analysis_message("vc_uniqueness", "uniqueness"))
            return types.Property(inputs, view=form)
        mode = types.RadioGroup(orientation="horizontal")
        mode.add_choice("top", label="The N most unique")
        mode.add_choice("threshold", label="Uniqueness ≥ a threshold")
        inputs.enum("mode", mode.values(), default="top", label="Keep", view=mode)
        if ctx.params.get("mode", "top") == "threshold":
            prop = inputs.float("threshold", default=0.5, min=0.0, max=1.0,
                                label="Minimum uniqueness",
                                description="0 highly redundant … 1 highly unique")
            t = ctx.params.get("threshold", 0.5)
            if not isinstance(t, (int, float)) or not 0 <= t <= 1:
                oc.invalid(inputs, prop, "The threshold must be a number from 0 to 1")
        else:
            n_default = _default_count(view)
            prop = inputs.int("count", default=n_default, min=1,
                              label="How many", description=f"Of the {len(view)} target samples")
            n = ctx.params.get("count", n_default)
            if not isinstance(n, int) or n < 1:
                oc.invalid(inputs, prop, "How many must be a whole number ≥ 1")
        inputs.bool("save", default=False, label="Also save it as a saved view")
        if ctx.params.get("save"):
            _view_name_input(inputs, ctx, "view_name", "Saved view name", "unique samples",
                             ctx.dataset.has_saved_view, "saved view")
        return types.Property(inputs, view=form)

    def execute(self, ctx):
        from fiftyone import ViewField as F

        p = ctx.params
        target = ctx.target_view()
        base = target.exists("vc_uniqueness")
        if p.get("mode", "top") == "threshold":
            view = base.match(F("vc_uniqueness") >= float(p.get("threshold", 0.5)))
            view = view.sort_by("vc_uniqueness", reverse=True)
        else:
            n = int(p.get("count", _default_count(target)))
            view = base.sort_by("vc_uniqueness", reverse=True).limit(n)
        saved = None
        if p.get("save"):
            saved = str(p.get("view_name", "unique samples") or "").strip()
            ctx.dataset.save_view(saved, view,
                                  description="Visual Curation: the most unique samples")
            ctx.ops.set_view(name=saved)
        else:
            ctx.ops.set_view(view=view)
        return {"count": len(view), "saved_view": saved}


def _clean_name(ctx):
    if ctx.params.get("output", "saved_view") == "new_dataset":
        return f"{ctx.dataset.name}-clean"
    return "clean"


class CleanDataset(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="clean_dataset",
            label="Visual Curation: clean dataset",
            description="Drop duplicate copies and samples with chosen issues → a saved view or "
                        "a new dataset (originals are kept unless you tick the delete box)",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        form = types.View(label="Clean dataset")
        inputs = types.Object()
        view = _target(ctx, inputs)
        if view is None:
            return types.Property(inputs, view=form)
        if not oc.has_sample_field(ctx.dataset, "vc_issues"):
            oc.error_form(inputs, "No 'vc_issues' field yet: run 'Visual Curation: run "
                                  "analyses' first.")
            return types.Property(inputs, view=form)
        has_dups = oc.has_sample_field(ctx.dataset, "vc_duplicate")
        inputs.bool("drop_duplicates", default=has_dups, label="Drop duplicate copies",
                    description="Samples with vc_duplicate = True (each group keeps one)"
                    if has_dups else "Run the 'duplicates' analysis first to use this")
        dd = types.Dropdown(multiple=True, label="Drop samples with these issues")
        for issue in ISSUES:
            if issue != "duplicate":
                dd.add_choice(issue, label=issue)
        prop = inputs.list("issues", types.String(), default=[], label="Drop samples with "
                           "these issues", description="Values of vc_issues", view=dd)
        issues = ctx.params.get("issues") or []
        bad = [i for i in issues if i not in ISSUES or i == "duplicate"]
        if bad:
            oc.invalid(inputs, prop, f"Unknown issues {bad}: choose among "
                                     f"{', '.join(i for i in ISSUES if i != 'duplicate')}")
        if ctx.params.get("drop_duplicates", has_dups) and not has_dups:
            oc.error_form(inputs, oc.missing_analysis_message("vc_duplicate", "duplicates"))
        elif not ctx.params.get("drop_duplicates", has_dups) and not issues:
            oc.invalid(inputs, prop, "Nothing to drop: tick 'Drop duplicate copies' or choose "
                                     "issues")

        out = types.RadioGroup()
        out.add_choice("saved_view", label="A saved view of the kept samples")
        out.add_choice("new_dataset", label="A new dataset (clone of the kept samples)")
        inputs.enum("output", out.values(), default="saved_view", label="Result", view=out)
        if ctx.params.get("output", "saved_view") == "new_dataset":
            import fiftyone as fo

            _view_name_input(inputs, ctx, "name", "New dataset name", _clean_name(ctx),
                             fo.dataset_exists, "dataset")
        else:
            _view_name_input(inputs, ctx, "name", "Saved view name", _clean_name(ctx),
                             ctx.dataset.has_saved_view, "saved view")
        inputs.bool("delete_originals", default=False,
                    label="Also DELETE the dropped samples from this dataset",
                    description="Cannot be undone. Leave unticked to keep every original.")
        if ctx.params.get("delete_originals"):
            inputs.view("vc_delete_warning", types.Warning(
                label="The dropped samples will be deleted from this dataset"))
        return types.Property(inputs, view=form)

    def execute(self, ctx):
        from fiftyone import ViewField as F

        p = ctx.params
        target = ctx.target_view()
        conds = []
        has_dups = ctx.dataset.has_sample_field("vc_duplicate")
        if p.get("drop_duplicates", has_dups) and has_dups:
            conds.append(F("vc_duplicate") == True)  # noqa: E712 - a MongoDB expression
        issues = [i for i in (p.get("issues") or []) if i in ISSUES]
        if issues:
            conds.append(F("vc_issues").exists() & F("vc_issues").contains(issues))
        drop = conds[0]
        for c in conds[1:]:
            drop = drop | c
        kept = target.match(~drop)
        dropped = target.match(drop)
        n_dropped, n_kept = len(dropped), len(kept)
        name = str(p.get("name", _clean_name(ctx)) or "").strip()
        out = {"kept": n_kept, "dropped": n_dropped}
        if p.get("output", "saved_view") == "new_dataset":
            new = kept.clone(name, persistent=True)
            out["dataset"] = new.name
        else:
            ctx.dataset.save_view(name, kept, description="Visual Curation: duplicates and "
                                                           "issues removed")
            out["saved_view"] = name
        if p.get("delete_originals"):
            ids = dropped.values("id")
            ctx.dataset.delete_samples(ids)
            out["deleted"] = len(ids)
        ctx.ops.reload_dataset()
        if "saved_view" in out:
            ctx.ops.set_view(name=name)
        else:
            ctx.ops.notify(f"Kept {n_kept} samples in the new dataset {name!r} "
                           f"({n_dropped} dropped)", variant="success")
            ctx.ops.open_dataset(name)
        return out


def _split_defaults(ctx):
    tags = sorted(t for t in ctx.dataset.distinct("tags") if t)
    fields = oc.split_fields(ctx.dataset)
    return tags, fields, ("tags" if tags and not fields else "field")


def _default_split_tags(tags):
    return [t for t in tags if t in ("train", "val", "validation", "test")] or tags


class FindLeakage(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="find_leakage",
            label="Visual Curation: find split leakage",
            description="Near-duplicates that cross splits (a split field or tags): the "
                        "duplicate groups that span two splits, as the grid",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        form = types.View(label="Find split leakage")
        inputs = types.Object()
        view = _target(ctx, inputs)
        if view is None:
            return types.Property(inputs, view=form)
        if not oc.has_sample_field(ctx.dataset, "vc_dup_group"):
            oc.error_form(inputs, oc.missing_analysis_message("vc_dup_group", "duplicates"))
            return types.Property(inputs, view=form)
        if not len(ctx.dataset.exists("vc_dup_group").limit(1)):
            oc.error_form(inputs, "The last analysis found no near-duplicates "
                                  "(vc_dup_group is empty): nothing can leak across splits",
                          label="Nothing to find")
            return types.Property(inputs, view=form)
        by = types.RadioGroup(orientation="horizontal")
        by.add_choice("field", label="A split field")
        by.add_choice("tags", label="Sample tags")
        tags, fields, default_by = _split_defaults(ctx)
        inputs.enum("split_by", by.values(), default=default_by, label="Splits are", view=by)
        if ctx.params.get("split_by", default_by) == "tags":
            dd = types.Dropdown(multiple=True, label="Split tags")
            for t in tags:
                dd.add_choice(t, label=t)
            default = _default_split_tags(tags)
            prop = inputs.list("split_tags", types.String(), default=default,
                               label="Split tags", view=dd,
                               description="Tags naming the splits (e.g. train, val, test)")
            chosen = ctx.params.get("split_tags", default) or []
            if not tags:
                oc.error_form(inputs, "No sample tags on this dataset: tag the splits (train, "
                                      "test…) or choose 'A split field'")
            elif len(chosen) < 2:
                oc.invalid(inputs, prop, "Choose at least two split tags")
            elif any(t not in tags for t in chosen):
                oc.invalid(inputs, prop, f"Unknown tags {[t for t in chosen if t not in tags]}")
        else:
            given = ctx.params.get("split_field")
            prop = oc.add_choice(inputs, "split_field", fields, "Split field",
                                 default=fields[0] if fields else None,
                                 description="A field whose values are the splits",
                                 extra=[given] if given else ())
            if not fields and not given:
                oc.error_form(inputs, "No string/int field that could name a split: add one "
                                      "(e.g. 'split'), or use sample tags")
            elif given and given not in fields:
                kind = oc.field_kind(ctx.dataset, given)
                oc.invalid(inputs, prop, f"The dataset has no field {given!r}" if kind is None
                           else f"{given!r} holds {kind}: choose a string, integer or "
                                "Classification field")
        return types.Property(inputs, view=form)

    def execute(self, ctx):
        from fiftyone import ViewField as F

        p = ctx.params
        target = ctx.target_view()
        grouped = target.exists("vc_dup_group")
        tags, fields, default_by = _split_defaults(ctx)
        if p.get("split_by", default_by) == "tags":
            splits = set(p.get("split_tags", _default_split_tags(tags)) or [])
            groups, tag_lists = grouped.values(["vc_dup_group", "tags"])
            per_sample = [[t for t in (ts or []) if t in splits] for ts in tag_lists]
        else:
            field = p.get("split_field") or fields[0]
            path = field
            f = ctx.dataset.get_field(field)
            if getattr(f, "document_type", None) is not None:
                path = f"{field}.label"
            groups, vals = grouped.values(["vc_dup_group", path])
            per_sample = [[v] if v is not None else [] for v in vals]
        spans = {}
        for g, s in zip(groups, per_sample):
            spans.setdefault(g, set()).update(s)
        leaky = sorted((g for g, s in spans.items() if len(s) > 1), key=str)
        view = grouped.match(F("vc_dup_group").is_in(leaky)).sort_by("vc_dup_group")
        ctx.ops.set_view(view=view)
        n = len(view)
        ctx.ops.notify(f"{len(leaky)} duplicate groups span two or more splits ({n} samples)"
                       if leaky else "No leakage: no duplicate group spans two splits",
                       variant="warning" if leaky else "success")
        return {"groups": len(leaky), "samples": n}


# ============================================================================== video

# the extraction parameters of the form: (name, label, default, min, max, is_int, description)
VIDEO_PARAMS = (
    ("sample_fps", "Frames examined per second", 4.0, 0.1, 60.0, False,
     "How many frames per second of video are compared; more finds shorter scenes"),
    ("cut_threshold", "Cut threshold", 0.35, 0.01, 1.0, False,
     "Colour-histogram distance between consecutive frames that opens a new scene "
     "(lower: more core frames)"),
    ("drift_threshold", "Drift threshold", 0.5, 0.01, 1.0, False,
     "Distance to the scene's first frame that opens a new scene (slow fades, pans)"),
    ("max_per_minute", "At most per minute", 30, 1, 600, True,
     "Cap on core frames per minute of video"),
    ("min_scene_seconds", "Shortest scene (seconds)", 0.5, 0.0, 60.0, False,
     "Cuts closer than this to the previous one are merged"),
)


def _video_params(ctx):
    out = {}
    for name, _, default, lo, hi, is_int, _ in VIDEO_PARAMS:
        v = ctx.params.get(name, default)
        out[name] = int(v) if is_int else float(v)
    return out


def _frames_name(ctx):
    from ..core.video import core_frames_name

    default = core_frames_name(ctx.dataset)
    return str(ctx.params.get("dataset_name", default) or "").strip(), default


class ExtractCoreFrames(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="extract_core_frames",
            label="Visual Curation: extract core frames",
            description="One frame per scene of each video (capped per minute) → a linked image "
                        "dataset '<dataset>-core-frames' to embed, analyse and search",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        form = types.View(label="Extract core frames")
        inputs = types.Object()
        if ctx.dataset is None:
            oc.error_form(inputs, "Open a dataset first")
            return types.Property(inputs, view=form)
        if ctx.dataset.media_type != "video":
            oc.error_form(inputs, f"{ctx.dataset.name!r} holds {ctx.dataset.media_type} "
                                  "samples, not videos: open a video dataset (or run "
                                  "'compute embeddings' directly on images).",
                          label="Not a video dataset")
            return types.Property(inputs, view=form)
        view = ctx.target_view()
        if len(view) == 0:
            oc.error_form(inputs, "The target is empty: choose a target (dataset, current view "
                                  "or selected samples) that has videos.")
            return types.Property(inputs, view=form)
        inputs.md("Reads each video once and keeps one sharp frame per scene. The frames go "
                  "to a linked image dataset (each carries `vc_video_id`, `vc_timestamp`); a "
                  "video that cannot be read gets `vc_error` and the others go on. Re-running "
                  "processes only new or changed videos. Next: open the core-frames dataset and "
                  "**compute embeddings**.", name="vc_help")
        for name, label, default, lo, hi, is_int, desc in VIDEO_PARAMS:
            add = inputs.int if is_int else inputs.float
            prop = add(name, default=default, min=lo, max=hi, label=label, description=desc)
            v = ctx.params.get(name, default)
            ok = isinstance(v, int) if is_int else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok or not lo <= v <= hi:
                oc.invalid(inputs, prop, f"{label} must be a {'whole ' if is_int else ''}number "
                                         f"from {lo} to {hi}")
        name, default = _frames_name(ctx)
        prop = inputs.str("dataset_name", default=default, label="Core-frames dataset",
                          description="The linked image dataset (created, or updated)")
        if not name:
            oc.invalid(inputs, prop, "Give the core-frames dataset a name")
        else:
            import fiftyone as fo

            if name == ctx.dataset.name:
                oc.invalid(inputs, prop, "The core frames need their own dataset: choose "
                                         "another name")
            elif fo.dataset_exists(name):
                info = fo.load_dataset(name).info or {}
                if info.get("vc_source_dataset") != ctx.dataset.name:
                    oc.invalid(inputs, prop, f"A dataset named {name!r} exists and is not "
                                             "this dataset's core frames: choose another name")
                else:
                    inputs.view("vc_update", types.Notice(
                        label=f"{name!r} exists: only new or changed videos are processed"))
        inputs.bool("open_result", default=True, label="Open the core frames when done",
                    description="Switch the App to the core-frames dataset (run now only)")
        conflict = oc.field_conflict(ctx.dataset, ["vc_error", "vc_core_frames"])
        if conflict:
            oc.error_form(inputs, conflict)
        oc.delegation_choice(inputs, ctx, default_delegate=len(view) > 50)
        return types.Property(inputs, view=form)

    def resolve_delegation(self, ctx):
        return oc.resolve_delegation(ctx)

    def execute(self, ctx):
        # FiftyOne drops a generator's return value: a delegated run (no App to talk to) runs
        # to the end here, so that its counts are stored with the operation
        if ctx.delegated:
            return oc.drain(self._run(ctx))
        return self._run(ctx)

    def _run(self, ctx):
        core = _core()
        view = ctx.target_view()
        name, _ = _frames_name(ctx)
        params = _video_params(ctx)
        frames = yield from oc.run_with_progress(
            ctx, lambda progress: core.extract_core_frames(
                view, dataset_name=name, progress=progress, **params),
            "Extracting core frames")
        stats = dict(frames.info.get("vc_last_extraction") or {})
        failed = view.exists("vc_error") if view.has_field("vc_error") else None
        errors = dict(zip(*failed.values(["filepath", "vc_error"]))) if failed else {}
        out = {"dataset": frames.name, "videos": stats.get("videos", len(view)),
               "processed": stats.get("processed", 0), "skipped": stats.get("skipped", 0),
               "core_frames": stats.get("core_frames", 0), "total_core_frames": len(frames),
               "errors": len(errors), "error_videos": dict(list(errors.items())[:20]),
               "seconds": stats.get("seconds")}
        out["summary"] = (
            f"{out['processed']} videos processed ({out['skipped']} unchanged), "
            f"{out['core_frames']} core frames → {frames.name!r} ({out['total_core_frames']} "
            f"in all); {out['errors']} videos with errors"
            + (" (see their vc_error)" if errors else ""))
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(f"Core frames: {out['summary']}. Next: 'Visual Curation: "
                                 "compute embeddings' on the core frames",
                                 variant="warning" if errors else "success")
            if ctx.params.get("open_result", True):
                yield ctx.ops.open_dataset(frames.name)
        return out

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="Result")
        outputs.str("dataset", label="Core-frames dataset")
        return types.Property(outputs)


def _core_frame_id(ctx):
    """The core frame to open: the ``frame_id`` param, else the sample open in the modal, else
    the only selected sample. ``(id or None, why not)``."""
    given = ctx.params.get("frame_id")
    if given:
        return str(given), None
    if ctx.current_sample:
        return ctx.current_sample, None
    selected = list(ctx.selected or [])
    if len(selected) == 1:
        return selected[0], None
    if selected:
        return None, f"{len(selected)} samples are selected: select exactly one core frame"
    return None, "Open a core frame (click it in the grid) or select one, then run this again"


class OpenSourceVideo(foo.Operator):
    """Opens the video a core frame comes from, at the frame's time.

    The App's sample modal cannot be told to seek within a video, but it plays a clip from
    the clip's first frame: this operator shows a clips view of that one video whose clip
    starts at the core frame (``to_clips([[(frame_number, last_frame)]])``, to the end of the
    video), and switches the App to the source video dataset with that view: one click on the
    clip plays it. The App switches datasets after the operator returns and resets the view
    when it arrives, so the view is set by a second step (``show_clip`` param) that re-queues
    itself until the App is on the video dataset (at most ``MAX_WAIT_STEPS`` times).
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="open_source_video",
            label="Visual Curation: open source video",
            description="The video of the core frame open in the modal (or selected), from "
                        "that frame's time",
            dynamic=True,
        )

    def resolve_placement(self, ctx):
        from ..core.video import is_core_frames

        if ctx.dataset is None or not is_core_frames(ctx.dataset):
            return None
        return types.Placement(
            types.Places.SAMPLES_VIEWER_ACTIONS,
            types.Button(label="Open source video at this frame", icon="movie",
                         prompt=False))

    def resolve_input(self, ctx):
        from ..core.video import is_core_frames, source_of_frame

        form = types.View(label="Open source video")
        inputs = types.Object()
        if ctx.params.get("show_clip"):          # second step, run by the operator itself
            inputs.obj("show_clip", label="Clip to show")
            return types.Property(inputs, view=form)
        if ctx.dataset is None:
            oc.error_form(inputs, "Open a dataset first")
            return types.Property(inputs, view=form)
        if not is_core_frames(ctx.dataset):
            oc.error_form(inputs, "This dataset has no core frames: run 'Visual Curation: "
                                  "extract core frames' on a video dataset, open its "
                                  "'-core-frames' dataset and click a frame.")
            return types.Property(inputs, view=form)
        fid, why = _core_frame_id(ctx)
        prop = inputs.str("frame_id", default=fid or "", label="Core frame id",
                          description="The frame open in the modal, or the one selected")
        if fid is None:
            oc.invalid(inputs, prop, why)
            return types.Property(inputs, view=form)
        try:
            src = source_of_frame(ctx.dataset, fid)
        except ValueError as e:
            oc.invalid(inputs, prop, str(e))
            return types.Property(inputs, view=form)
        name = src["filepath"].rsplit("/", 1)[-1]
        inputs.view("vc_where", types.Notice(
            label=f"Opens {name} in {src['dataset']!r} from {src['timestamp']:.1f} s "
                  f"(frame {src['frame_number']})"))
        return types.Property(inputs, view=form)

    def execute(self, ctx):
        import fiftyone as fo

        from ..core.video import source_of_frame

        pending = ctx.params.get("show_clip")
        if pending:
            return self._show_clip(ctx, pending)
        fid, why = _core_frame_id(ctx)
        if fid is None:
            raise ValueError(why)
        src = source_of_frame(ctx.dataset, fid)
        videos = fo.load_dataset(src["dataset"])
        support = [src["frame_number"], src["last_frame"]]
        clips = videos.select(src["video_id"]).to_clips([[tuple(support)]])
        clip_id = clips.first().id
        if ctx.current_sample:
            ctx.ops.close_sample()  # a modal left open would look its frame up in the videos
        ctx.ops.open_dataset(videos.name)
        # the App switches datasets after this returns and resets the view on arrival, so the
        # clip view is set by a second step of this operator, run once the App is on the videos
        ctx.trigger(self.uri, params={"show_clip": dict(
            dataset=videos.name, video_id=src["video_id"], support=support,
            file=src["filepath"].rsplit("/", 1)[-1], timestamp=src["timestamp"], attempt=0)})
        return {"dataset": videos.name, "video_id": src["video_id"], "clip_id": clip_id,
                "timestamp": src["timestamp"], "frame_number": src["frame_number"],
                "support": support}


    #: times the second step re-queues itself while the App is still on the core frames
    MAX_WAIT_STEPS = 40

    def _show_clip(self, ctx, pending):
        import time

        import fiftyone as fo

        if ctx.dataset is None or ctx.dataset.name != pending["dataset"]:
            attempt = int(pending.get("attempt", 0))
            if attempt >= self.MAX_WAIT_STEPS:
                ctx.ops.notify(f"Open {pending['dataset']!r} to see the video", variant="warning")
                return {"shown": False}
            time.sleep(0.1)
            ctx.trigger(self.uri, params={"show_clip": dict(pending, attempt=attempt + 1)})
            return {"shown": False, "waiting": attempt + 1}
        videos = fo.load_dataset(pending["dataset"])
        clips = videos.select(pending["video_id"]).to_clips([[tuple(pending["support"])]])
        ctx.ops.set_view(view=clips)
        ctx.ops.notify(f"Click the clip to play {pending['file']} from "
                       f"{float(pending['timestamp']):.1f} s", variant="info")
        return {"shown": True, "clip_id": clips.first().id}


# ============================================================================== cleanup

class DeleteRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="delete_run",
            label="Visual Curation: delete results",
            description="Removes exactly the vc_ fields, run records and LanceDB tables of this "
                        "dataset",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        form = types.View(label="Delete Visual Curation results")
        inputs = types.Object()
        if ctx.dataset is None:
            oc.error_form(inputs, "Open a dataset first")
            return types.Property(inputs, view=form)
        from ..core import fields as vcf
        from ..core import runs as vcr

        ours, runs = vcf.our_fields(ctx.dataset), vcr.ours(ctx.dataset)
        if not ours and not runs:
            oc.error_form(inputs, "Nothing to delete: this dataset has no Visual Curation "
                                  "results", label="Nothing to do")
            return types.Property(inputs, view=form)
        inputs.view("what", types.Notice(
            label=f"Deletes {len(ours)} Visual Curation fields, {len(runs)} run records and "
                  "their LanceDB tables. Your own fields and samples are kept."))
        prop = inputs.bool("confirm", default=False, required=True, label="I understand")
        if not ctx.params.get("confirm"):
            prop.invalid = True
            prop.error_message = "Tick 'I understand' to delete"
        return types.Property(inputs, view=form)

    def execute(self, ctx):
        removed = _core().delete_run(ctx.dataset)
        # a view or sidebar filter on a field that no longer exists would break the grid
        stages = str(ctx.request_params.get("view") or "")
        filters = ctx.request_params.get("filters") or {}
        if "vc_" in stages:
            ctx.ops.clear_view()
        if any(str(k).startswith("vc_") for k in filters):
            ctx.ops.clear_sidebar_filters()
        ctx.ops.reload_dataset()
        return {"fields": len(removed["fields"]), "runs": len(removed["runs"]),
                "tables": len(removed["tables"])}


OPERATORS = [ComputeEmbeddings, RunAnalyses, FindSimilar, TextSearch, SelectUniques,
             CleanDataset, FindLeakage, ExtractCoreFrames, OpenSourceVideo, DeleteRun]
