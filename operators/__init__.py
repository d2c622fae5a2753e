"""App operators: thin wrappers over :mod:`visual_curation.core`."""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import common as oc

ANALYSES = ("clusters", "duplicates", "uniqueness", "mislabels", "outliers", "quality")
ISSUES = ("duplicate", "mislabel", "outlier", "blur", "dark", "bright")


def _core():
    from .. import core  # imported lazily: torch/open_clip load only when an operator runs

    return core


def _default_model(dataset):
    from ..core import runs as vcr

    best = None
    for key in vcr.ours(dataset, vcr.METHOD_EMBEDDINGS):
        conf = vcr.load_config(dataset, key) or {}
        if conf.get("embeddings_field"):
            continue
        ts = dataset.get_run_info(key).timestamp
        if best is None or ts > best[0]:
            best = (ts, conf)
    if best:
        return best[1].get("model") or "ViT-B-32", best[1].get("pretrained")
    return "ViT-B-32", "laion2b_s34b_b79k"


def _embeddings_runs(dataset, patches_field=None):
    from ..core import runs as vcr
    from ..core.store import kind_for

    kind = kind_for(patches_field)
    return [vcr.load_config(dataset, k) for k in vcr.ours(dataset, vcr.METHOD_EMBEDDINGS)
            if (vcr.load_config(dataset, k) or {}).get("kind") == kind]


class ComputeEmbeddings(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_embeddings",
            label="Visual Curation: compute embeddings",
            description="CLIP embeddings of images or object crops into LanceDB (incremental)",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ctx.dataset is None:
            oc.error_form(inputs, "Open a dataset first")
            return types.Property(inputs)
        view = ctx.target_view()
        if len(view) == 0:
            oc.error_form(inputs, "The target is empty: choose a view with samples")
            return types.Property(inputs, view=types.View(label="Compute embeddings"))
        if ctx.dataset.media_type == "video":
            oc.error_form(inputs, "Video dataset: run 'Visual Curation: extract core frames' "
                                  "first, then embed the core frames")
            return types.Property(inputs)
        model, pretrained = _default_model(ctx.dataset)
        inputs.str("model", default=model, required=True, label="Model",
                   description="open_clip architecture (e.g. ViT-B-32), or 'demo' for the "
                               "offline model shipped with the plugin")
        inputs.str("pretrained", default=pretrained or "", required=False,
                   label="Pretrained weights",
                   description="open_clip tag (laion2b_s34b_b79k) or a local checkpoint path; "
                               "ignored for 'demo'")
        kind = types.RadioGroup(orientation="horizontal")
        kind.add_choice("images", label="Image view")
        kind.add_choice("objects", label="Object view (detection crops)")
        inputs.enum("kind", kind.values(), default="images", label="Embed", view=kind)
        if ctx.params.get("kind") == "objects":
            dets = oc.detection_fields(ctx.dataset)
            if not dets:
                oc.error_form(inputs, "Object view needs a Detections field on the dataset")
            else:
                oc.add_choice(inputs, "patches_field", dets, "Detections field",
                              default=dets[0], required=True)
        inputs.int("batch_size", default=32, label="Batch size", required=True)
        oc.delegation_choice(inputs, ctx, default_delegate=len(view) > 5000)
        return types.Property(inputs, view=types.View(label="Compute embeddings"))

    def resolve_delegation(self, ctx):
        return oc.resolve_delegation(ctx)

    def execute(self, ctx):
        core = _core()
        view = ctx.target_view()
        p = ctx.params
        bs = int(p.get("batch_size") or 32)
        if bs < 1:
            raise ValueError("Batch size must be at least 1")
        patches = p.get("patches_field") if p.get("kind") == "objects" else None
        result = yield from oc.run_with_progress(
            ctx, lambda progress: core.compute_embeddings(
                view, model=p.get("model") or "ViT-B-32",
                pretrained=p.get("pretrained") or None, patches_field=patches,
                batch_size=bs, progress=progress),
            "Embedding")
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(f"Embeddings: {result}. Next: run "
                                 "'Visual Curation: run analyses'", variant="success")
        return {"summary": str(result), "embedded": result.embedded, "errors": result.errors}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)


class RunAnalyses(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="run_analyses",
            label="Visual Curation: run analyses",
            description="Clusters, duplicates, uniqueness, mislabels, outliers and image quality "
                        "→ vc_ fields",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ctx.dataset is None:
            oc.error_form(inputs, "Open a dataset first")
            return types.Property(inputs)
        view = ctx.target_view()
        if len(view) == 0:
            oc.error_form(inputs, "The target is empty: choose a view with samples")
            return types.Property(inputs)
        kind = types.RadioGroup(orientation="horizontal")
        kind.add_choice("images", label="Image view")
        kind.add_choice("objects", label="Object view (detections)")
        inputs.enum("kind", kind.values(), default="images", label="Analyse", view=kind)
        patches = None
        if ctx.params.get("kind") == "objects":
            dets = oc.detection_fields(ctx.dataset)
            if not dets:
                oc.error_form(inputs, "Object view needs a Detections field on the dataset")
                return types.Property(inputs)
            oc.add_choice(inputs, "patches_field", dets, "Detections field", default=dets[0],
                          required=True)
            patches = ctx.params.get("patches_field") or dets[0]
        if not _embeddings_runs(ctx.dataset, patches):
            oc.error_form(inputs, "No embeddings yet for this view kind: run 'Visual Curation: "
                                  "compute embeddings' first")
            return types.Property(inputs)
        if patches is None:
            labels = oc.label_fields(ctx.dataset)
            oc.add_choice(inputs, "label_field", [""] + labels, "Label field",
                          description="Classification field for mislabels and outliers "
                                      "(empty: skip them)",
                          default=labels[0] if labels else "")
        analyses = types.Dropdown(multiple=True, label="Analyses")
        for a in ANALYSES:
            analyses.add_choice(a, label=a)
        inputs.list("analyses", types.String(), default=list(ANALYSES), label="Analyses",
                    description="Mislabels and outliers need a label field", view=analyses)
        th = types.Object()
        for issue in ISSUES:
            if issue != "duplicate":
                th.float(issue, default=0.5, label=f"{issue} threshold", min=0.0, max=1.0)
        inputs.define_property("thresholds", th, label="Thresholds for vc_issues")
        oc.delegation_choice(inputs, ctx, default_delegate=len(view) > 50000)
        return types.Property(inputs, view=types.View(label="Run analyses"))

    def resolve_delegation(self, ctx):
        return oc.resolve_delegation(ctx, big=50000)

    def execute(self, ctx):
        core = _core()
        view = ctx.target_view()
        p = ctx.params
        patches = p.get("patches_field") if p.get("kind") == "objects" else None
        label_field = patches if patches else (p.get("label_field") or None)
        analyses = [a for a in (p.get("analyses") or ANALYSES) if a in ANALYSES]
        if not label_field:
            analyses = [a for a in analyses if a not in ("mislabels", "outliers")]
        thresholds = {k: float(v) for k, v in (p.get("thresholds") or {}).items()
                      if k in ISSUES and v is not None}
        summary = yield from oc.run_with_progress(
            ctx, lambda progress: core.analyze(
                view, label_field=label_field, patches_field=patches, analyses=analyses,
                thresholds=thresholds, progress=progress),
            "Analysing")
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify("Analyses done: filter the sidebar by vc_issues, or open the "
                                 "Visual Curation panel", variant="success")
        return {"issues": summary.get("issues", {}), "seconds": summary.get("seconds")}




class FindSimilar(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="find_similar",
            label="Visual Curation: find similar",
            description="Nearest samples to the selection, a crop region, an uploaded image or "
                        "a cluster",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ctx.dataset is None:
            oc.error_form(inputs, "Open a dataset first")
            return types.Property(inputs)
        src = types.RadioGroup()
        src.add_choice("selected", label="Selected samples")
        src.add_choice("selected_labels", label="Selected objects (patches view)")
        src.add_choice("region", label="A region of the current sample")
        src.add_choice("upload", label="An uploaded image")
        src.add_choice("cluster", label="A cluster")
        default = "selected_labels" if ctx.selected_labels else "selected"
        inputs.enum("source", src.values(), default=default, label="Query", view=src)
        source = ctx.params.get("source", default)
        if source == "selected" and not ctx.selected:
            inputs.view("hint", types.Warning(label="Select one or more samples in the grid"))
        if source == "selected_labels" and not ctx.selected_labels:
            inputs.view("hint", types.Warning(label="Select objects in a patches view"))
        if source == "region":
            inputs.str("sample_id", label="Sample id", required=not ctx.current_sample,
                       default=ctx.current_sample or "")
            inputs.list("box", types.Number(), required=True, label="Box [x, y, w, h]",
                        description="relative coordinates in [0, 1]",
                        default=[0.25, 0.25, 0.5, 0.5])
        if source == "upload":
            inputs.obj("file", label="Image file", required=True,
                       view=types.FileView(label="Image (PNG, JPEG, WebP; ≤ 20 MB)"))
        if source == "cluster":
            inputs.int("level", default=1, min=1, max=5, label="Granularity (1-5)")
            inputs.int("cluster", required=True, label="Cluster id")
        inputs.int("k", default=50, min=1, max=10000, label="Number of results")
        return types.Property(inputs, view=types.View(label="Find similar"))

    def execute(self, ctx):
        from ..core import similarity as vcs

        p = ctx.params
        k = int(p.get("k") or 50)
        source = p.get("source", "selected")
        dataset = ctx.dataset
        view = ctx.dataset.view()
        kw = {}
        patches = None
        if source == "selected":
            if not ctx.selected:
                raise ValueError("Select one or more samples first")
            kw["sample_id"] = list(ctx.selected)
        elif source == "selected_labels":
            if not ctx.selected_labels:
                raise ValueError("Select objects in a patches view first")
            patches = ctx.selected_labels[0]["field"]
            kw["sample_id"] = [lab["label_id"] for lab in ctx.selected_labels]
        elif source == "region":
            box = [float(v) for v in (p.get("box") or [])]
            if len(box) != 4 or not all(0 <= v <= 1 for v in box) or box[2] <= 0 or box[3] <= 0:
                raise ValueError("The box must be [x, y, w, h] in relative coordinates (0-1)")
            kw["sample_id"] = p.get("sample_id") or ctx.current_sample
            kw["box"] = box
        elif source == "upload":
            kw["image"] = _uploaded_image(p.get("file"))
        elif source == "cluster":
            level = int(p.get("level") or 1)
            if not 1 <= level <= 5:
                raise ValueError("Granularity must be 1-5")
            members = dataset.match({f"vc_cluster_{level}": int(p["cluster"])}).values("id")
            if not members:
                raise ValueError("No samples in that cluster")
            kw["sample_id"] = members[:1000]
        result = vcs.find_similar(view, k=k, patches_field=patches, dist_field="vc_similarity",
                                  **kw)
        ctx.ops.reload_dataset()
        ctx.ops.set_view(view=result)
        return {"count": len(result)}


MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def _uploaded_image(file):
    """The FileView payload → a PIL image, size- and type-checked."""
    import base64
    import io

    from PIL import Image

    from ..core import images as vci

    if not file or not isinstance(file, dict) or not file.get("content"):
        raise ValueError("Choose an image file to upload")
    content = file["content"]
    if isinstance(content, str) and "," in content[:100]:
        content = content.split(",", 1)[1]
    if len(content) > MAX_UPLOAD_BYTES * 4 // 3 + 16:
        raise ValueError("The uploaded file is larger than 20 MB")
    data = base64.b64decode(content, validate=False)
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
        inputs = types.Object()
        if ctx.dataset is None:
            oc.error_form(inputs, "Open a dataset first")
            return types.Property(inputs)
        if not [c for c in _embeddings_runs(ctx.dataset) if not c.get("embeddings_field")]:
            oc.error_form(inputs, "Text search needs CLIP embeddings: run 'Visual Curation: "
                                  "compute embeddings' first")
            return types.Property(inputs)
        inputs.str("text", required=True, label="Prompt",
                   description='e.g. "a photo of a sneaker"')
        inputs.int("k", default=100, min=1, max=10000, label="Number of results")
        return types.Property(inputs, view=types.View(label="Text search"))

    def execute(self, ctx):
        from ..core import similarity as vcs

        text = (ctx.params.get("text") or "").strip()
        if not text:
            raise ValueError("Type a prompt")
        k = int(ctx.params.get("k") or 100)
        view = vcs.find_similar(ctx.view, text=text[:1000], k=k, dist_field="vc_similarity")
        ctx.ops.reload_dataset()
        ctx.ops.set_view(view=view)
        return {"count": len(view)}


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
        inputs = types.Object()
        if ctx.dataset is None:
            oc.error_form(inputs, "Open a dataset first")
            return types.Property(inputs)
        from ..core import fields as vcf

        ours = vcf.our_fields(ctx.dataset)
        inputs.view("what", types.Notice(
            label=f"Deletes {len(ours)} Visual Curation fields, its run records and its LanceDB "
                  "tables. Your own fields and samples are kept."))
        inputs.bool("confirm", default=False, required=True, label="I understand")
        return types.Property(inputs, view=types.View(label="Delete Visual Curation results"))

    def execute(self, ctx):
        if not ctx.params.get("confirm"):
            raise ValueError("Tick 'I understand' to delete")
        removed = _core().delete_run(ctx.dataset)
        ctx.ops.reload_dataset()
        return {"fields": len(removed["fields"]), "tables": len(removed["tables"])}


OPERATORS = [ComputeEmbeddings, RunAnalyses, FindSimilar, TextSearch, DeleteRun]
