"""The "embedding map" operator: a 2-D map of the embeddings as a Brain visualization run, then
the App's Embeddings panel on it, coloured by ``vc_cluster_<level>``."""
from __future__ import annotations

from dataclasses import dataclass

import fiftyone.operators.types as types

from . import results
from . import common as oc
from . import forms

EMBEDDINGS_PANEL = "Embeddings"
LEVELS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class MapSettings:
    patches_field: str | None
    method: str
    level: int
    color_field: str | None   # the cluster field the panel is coloured by, when it exists


def cluster_path(dataset, patches_field, level):
    """``vc_cluster_<level>`` (or ``<detections path>.vc_cluster_<level>``) when the dataset
    has it, else None."""
    from ..core import fields as vcf

    name = f"vc_cluster_{level}"
    if patches_field:
        path = f"{vcf.label_list_path(dataset, patches_field)}.{name}"
        try:
            return path if dataset.get_field(path) is not None else None
        except Exception:  # noqa: BLE001
            return None
    return name if oc.has_sample_field(dataset, name) else None


def map_settings(ctx):
    """``ctx.params`` with their defaults: the view kind, the method (auto), the cluster level
    to colour by (2)."""
    pf = forms.patches_param(ctx)
    level = ctx.params.get("level", 2)
    level = level if level in LEVELS else 2
    return MapSettings(patches_field=pf, method=ctx.params.get("method") or "auto",
                       level=level, color_field=cluster_path(ctx.dataset, pf, level))


def panel_data(brain_key, color_field):
    """The Embeddings panel's local state that opens ``brain_key`` coloured by
    ``color_field``."""
    return {"openKey": brain_key, "colorField": color_field}


class EmbeddingMap(forms.LongRunOperator):
    form_label = "Embedding map"

    op_name = "embedding_map"
    op_label = "Visual Curation: embedding map"
    op_description = ("A 2-D map (UMAP or PCA) of the embeddings, shown in the App's Embeddings "
                      "panel coloured by cluster; a lasso filters the grid")

    def form(self, ctx, inputs):
        from ..core.embedding_map import AUTO_PCA_ABOVE
        from ..core.similarity import embeddings_runs

        view = forms.target_view(ctx, inputs)
        if view is None:
            return
        inputs.md("Maps the embeddings to 2-D and opens the **Embeddings** panel on the map, "
                  "coloured by cluster. Lasso points there to filter the grid.", name="vc_help")
        pf, ok = forms.kind_choice(inputs, ctx, "Map")
        if not ok:
            return
        if not embeddings_runs(ctx.dataset, pf):
            forms.error_form(inputs, oc.missing_embeddings_message(pf))
            return
        s = map_settings(ctx)
        forms.add_choice(
            inputs, "method", [("auto", f"Auto (UMAP; PCA above {AUTO_PCA_ABOVE:,} points)"),
                               ("umap", "UMAP"), ("pca", "PCA (fast, coarser)")],
            "Method", default="auto",
            description="UMAP keeps neighbourhoods (clusters show as islands); PCA is a linear "
                        "projection, seconds even for millions")
        forms.add_choice(inputs, "level", [(lv, f"Level {lv}") for lv in LEVELS],
                         "Colour by cluster level", default=2,
                         description="vc_cluster_<level> colours the points (1 = coarsest)")
        if s.color_field is None:
            inputs.view("vc_no_clusters", types.Notice(
                label=f"No vc_cluster_{s.level} field yet: the map opens uncoloured ('"
                      f"{oc.RUN_ANALYSES}' with clusters adds it)."))
        forms.delegation_choice(inputs, default_delegate=len(view) > 100_000)

    def execute(self, ctx):
        from ..core.embedding_map import compute_embedding_map

        view = results.target(ctx)
        s = map_settings(ctx)
        result = yield from oc.run_with_progress(
            ctx, lambda progress: compute_embedding_map(
                view, method=s.method, patches_field=s.patches_field, progress=progress),
            "Embedding map")
        if not ctx.delegated:
            yield ctx.ops.open_panel(EMBEDDINGS_PANEL, layout="horizontal", is_active=True)
            yield ctx.trigger(f"{self.plugin_name}/{ShowEmbeddingMap.op_name}",
                              params=panel_data(result.brain_key, s.color_field))
            yield ctx.ops.notify(f"Embedding map: {result}", variant="success")
        return {"summary": str(result), "brain_key": result.brain_key,
                "points": result.points, "method": result.method}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)


def embeddings_panel_ids(spaces):
    """The ids of the App's open Embeddings panels in a ``fo.Space`` layout."""
    if spaces is None:
        return []
    out, todo = [], [spaces]
    while todo:
        node = todo.pop()
        if getattr(node, "type", None) == EMBEDDINGS_PANEL and getattr(node, "component_id",
                                                                       None):
            out.append(node.component_id)
        todo += list(getattr(node, "children", None) or [])
    return out


class ShowEmbeddingMap(forms.FormOperator):
    """Points the open Embeddings panel at a map and its colour field (unlisted: the embedding
    map operator triggers it once the panel is open).

    The panel keeps its open run and colour field in its local state, which it clears when it
    first mounts; the panel's code loads lazily, so the state is set a few times over the next
    seconds (the same values each time) to land after that first mount.
    """

    op_name = "show_embedding_map"
    op_label = "Visual Curation: show embedding map"
    config_options = dict(unlisted=True, execute_as_generator=True)
    DELAYS = (0.0, 1.0, 2.0, 3.0)
    #: re-tries (0.5 s apart) while the panel is not yet in the App's layout
    ATTEMPTS = 6

    def form(self, ctx, inputs):
        inputs.str("openKey", required=True)
        inputs.str("colorField")
        inputs.int("attempt")

    def execute(self, ctx):
        import time

        data = panel_data(ctx.params.get("openKey"), ctx.params.get("colorField"))
        ids = embeddings_panel_ids(ctx.spaces)
        attempt = int(ctx.params.get("attempt") or 0)
        if not ids:
            if attempt + 1 < self.ATTEMPTS:
                time.sleep(0.5)
                yield ctx.trigger(f"{self.plugin_name}/{self.op_name}",
                                  params=dict(data, attempt=attempt + 1))
            return {"panels": 0}
        for delay in self.DELAYS:
            time.sleep(delay)
            for pid in ids:
                yield ctx.trigger("set_panel_data", params={"panel_id": pid, "data": data,
                                                            "full_merge": True})
        return {"panels": len(ids)}
