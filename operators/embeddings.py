"""The "compute embeddings" operator: CLIP embeddings of the target into LanceDB."""
from __future__ import annotations

from dataclasses import dataclass

import fiftyone.operators.types as types

from . import results
from . import common as oc
from . import forms

DEFAULT_BATCH_SIZE = 32
MAX_BATCH_SIZE = 4096


def default_model(dataset):
    """``(model, pretrained)`` of the most recent CLIP embeddings of images, else the default
    open_clip model."""
    from ..core.models import DEFAULT_MODEL, DEFAULT_PRETRAINED
    from ..core.similarity import embeddings_runs

    runs = embeddings_runs(dataset, need_text=True)
    if runs:
        return runs[0].get("model") or DEFAULT_MODEL, runs[0].get("pretrained")
    return DEFAULT_MODEL, DEFAULT_PRETRAINED


@dataclass(frozen=True)
class EmbedSettings:
    model: str
    pretrained: str | None
    #: the defaults the form shows (the last CLIP model used)
    default_model: str
    default_pretrained: str | None
    patches_field: str | None
    batch_size: object  # as given: the form checks it
    engine: str = "local"
    ray_address: str | None = None


def embed_settings(ctx):
    """``ctx.params`` with their defaults: the model (the last CLIP model used), the
    Detections field of Object view, the batch size."""
    d_model, d_pretrained = default_model(ctx.dataset)
    model = str(ctx.params.get("model", d_model) or "").strip()
    pretrained = str(ctx.params.get("pretrained", d_pretrained) or "").strip() or None
    return EmbedSettings(model=model, pretrained=pretrained, default_model=d_model,
                         default_pretrained=d_pretrained, patches_field=forms.patches_param(ctx),
                         batch_size=ctx.params.get("batch_size", DEFAULT_BATCH_SIZE),
                         engine=str(ctx.params.get("engine") or "local"),
                         ray_address=str(ctx.params.get("ray_address") or "").strip() or None)


def ray_problem():
    """Why a Ray run cannot start here (Ray or lance-ray not installed), else None."""
    from ..core.embed_ray import require_ray

    try:
        require_ray()
    except ImportError as e:
        return str(e)
    return None


def engine_inputs(inputs, s):
    """Where the images are embedded: in this process, or on a Ray cluster."""
    forms.add_choice(inputs, "engine", [("local", "This machine"), ("ray", "A Ray cluster")],
                     label="Run on", default="local",
                     description="A Ray cluster splits the work over its machines (one model per "
                                 "worker, a GPU each where there are GPUs)")
    if s.engine != "ray":
        return True
    e = inputs.str("ray_address", default="", required=False, label="Ray address",
                   description="e.g. ray://head:10001 or auto; empty starts Ray on this machine")
    return forms.check(inputs, e, ray_problem())


class ComputeEmbeddings(forms.LongRunOperator):
    form_label = "Compute embeddings"

    op_name = "compute_embeddings"
    op_label = oc.COMPUTE_EMBEDDINGS
    op_description = ("CLIP embeddings of images or object crops into LanceDB (incremental: "
                      "only new or changed files are embedded)")

    def form(self, ctx, inputs):
        view = forms.target_view(ctx, inputs)
        if view is None:
            return
        s = embed_settings(ctx)
        inputs.md("Embeds every image (or every box of a Detections field) of the target into "
                  "LanceDB. Re-running embeds only what changed. Next step: **run analyses**.",
                  name="vc_help")
        m = inputs.str("model", default=s.default_model, label="Model",
                       description="open_clip architecture (ViT-B-32, ViT-L-14…), or 'demo' for "
                                   "the offline model shipped with the plugin")
        p = inputs.str("pretrained", default=s.default_pretrained or "", required=False,
                       label="Pretrained weights",
                       description="open_clip tag (laion2b_s34b_b79k) or a local checkpoint path; "
                                   "leave empty for 'demo'")
        forms.check(inputs, p, oc.checkpoint_problem(s.model, s.pretrained))
        if not s.model:
            forms.invalid(inputs, m, "Give a model: 'demo', or an open_clip architecture")
        _, ok = forms.kind_choice(inputs, ctx, "Embed")
        if not ok:
            return
        bs = inputs.int("batch_size", default=DEFAULT_BATCH_SIZE, label="Batch size",
                        description="Images per forward pass (lower it if memory runs out)")
        forms.check(inputs, bs, oc.number_problem(s.batch_size, 1, MAX_BATCH_SIZE, integer=True,
                                                  subject="Batch size"))
        if not engine_inputs(inputs, s):
            return
        conflict = oc.field_conflict(ctx.dataset, ["vc_error"])
        if conflict:
            forms.error_form(inputs, conflict)
        forms.delegation_choice(inputs, default_delegate=len(view) > 5000)

    def execute(self, ctx):
        from ..core import compute_embeddings

        view = results.target(ctx)
        s = embed_settings(ctx)
        result = yield from oc.run_with_progress(
            ctx, lambda progress: compute_embeddings(
                view, model=s.model, pretrained=s.pretrained, patches_field=s.patches_field,
                batch_size=int(s.batch_size), progress=progress, engine=s.engine,
                ray_address=s.ray_address),
            "Embedding")
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(f"Embeddings: {result}. Next: '{oc.RUN_ANALYSES}'",
                                 variant="success")
        return {"summary": str(result), "embedded": result.embedded, "errors": result.errors}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)
