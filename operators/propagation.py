"""The label-propagation operators: propagate labels from a few examples, review the next
batch, accept it, and give the selected samples a label (a rejected suggestion corrected).
The work itself is :mod:`visual_curation.core.propagation`."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import fiftyone.operators.types as types

from ..core import propagation as vcp
from . import results
from . import common as oc
from . import forms

ORDERS = {"least_confident": "Least confident first", "most_confident": "Most confident first"}
MAX_BATCH = 1000


@dataclass(frozen=True)
class PropagateSettings:
    patches_field: str | None
    label_field: str | None
    #: "" (every filled label) or a tag naming the examples
    examples: str
    output_field: str
    text_prompts: bool
    size: int
    order: str


def propagate_settings(ctx):
    """``ctx.params`` with their defaults: the first Classification field (the detections in
    object view), every filled label as an example, ``vc_propagated``, no text prompts, and
    batches of 50, least confident first."""
    p = ctx.params
    pf = forms.patches_param(ctx)
    fields = oc.label_fields(ctx.dataset)
    label_field = pf or p.get("label_field") or (fields[0] if fields else None)
    return PropagateSettings(
        patches_field=pf, label_field=label_field, examples=str(p.get("examples") or ""),
        output_field=forms.name_param(ctx, "output_field", vcp.OUTPUT_FIELD),
        text_prompts=bool(p.get("text_prompts")), size=p.get("size", 50),
        order=p.get("order") or "least_confident")


def _label_field_input(ctx, inputs, s, objects=True):
    """The image / object view choice (``objects``) and, in image view, the label field
    dropdown; returns whether they are usable."""
    if objects:
        pf, ok = forms.kind_choice(inputs, ctx, "Labels of")
        if not ok:
            return False
        if pf:
            return True
    fields = oc.label_fields(ctx.dataset)
    if not fields:
        forms.error_form(inputs, "No Classification field on this dataset: add one and label a "
                                 "few samples per class")
        return False
    prop = forms.add_choice(inputs, "label_field", fields, "Label field (partly filled)",
                            default=fields[0],
                            extra=[s.label_field] if s.label_field else ())
    return forms.check(inputs, prop, oc.label_field_problem(ctx.dataset, s.label_field))


def _example_counts(view, s):
    from ..core.fields import label_list_path

    if s.patches_field:
        lp = label_list_path(view._dataset, s.patches_field)
        labs, tags = view.values([f"{lp}.label", f"{lp}.tags"])
        pairs = [(a, t or []) for la, ta in zip(labs, tags) for a, t in zip(la or [], ta or [])]
    else:
        pairs = list(zip(*view.values([f"{s.label_field}.label", "tags"])))
    return Counter(lab for lab, t in pairs if lab is not None and (
        not s.examples or s.examples in (t or [])))


class PropagateLabels(forms.FormOperator):
    form_label = "Propagate labels"

    op_name = "propagate_labels"
    op_label = "Visual Curation: propagate labels"
    op_description = ("Label every unlabelled sample (or object) from a few labelled examples "
                      "per class, with a confidence; writes a vc_ field, never yours")
    config_options = dict(allow_immediate_execution=True, allow_delegated_execution=True)

    def form(self, ctx, inputs):
        view = forms.target_view(ctx, inputs)
        if view is None:
            return
        s = propagate_settings(ctx)
        if not _label_field_input(ctx, inputs, s):
            return
        from ..core.similarity import embeddings_runs

        if not embeddings_runs(ctx.dataset, s.patches_field):
            forms.error_form(inputs, oc.missing_embeddings_message(s.patches_field))
            return
        tags = sorted(ctx.dataset.distinct("tags")) if not s.patches_field else sorted(
            ctx.dataset.count_label_tags())
        forms.add_choice(inputs, "examples", [("", "Every filled label")] + tags,
                         "Examples", default="", extra=[s.examples] if s.examples else (),
                         description="Which labels teach the propagation: all of them, or "
                                     "only those tagged")
        counts = _example_counts(view, s)
        if not counts:
            forms.error_form(inputs, "No labelled examples in the target: label a few "
                                     "samples per class first")
            return
        low = sorted(c for c, n in counts.items() if n < 2)
        inputs.view("vc_examples", types.Notice(label=f"{sum(counts.values()):,} examples of "
                                                      f"{len(counts)} classes"))
        if low:
            inputs.view("vc_low", types.Warning(
                label=f"Only one example of {', '.join(low[:8])}: label a few more for a "
                      "sure propagation"))
        if len(counts) < 2:
            forms.error_form(inputs, "Examples of at least two classes are needed")
            return
        prop = inputs.str("output_field", default=vcp.OUTPUT_FIELD, label="Output field",
                          description="A new vc_ field; your label field is never written")
        if not s.output_field.startswith("vc_"):
            forms.invalid(inputs, prop, "The output field's name must start with 'vc_'")
            return
        inputs.bool("text_prompts", default=False, label="Also use the class names",
                    description="CLIP embeddings: each class name as one more example")

    def execute(self, ctx):
        s = propagate_settings(ctx)
        target = results.target(ctx)
        res = vcp.propagate_labels(target, s.label_field, output_field=s.output_field,
                                   patches_field=s.patches_field, examples=s.examples or None,
                                   text_prompts=s.text_prompts)
        ctx.ops.reload_dataset()
        results.show(ctx, vcp.review_batch(target, s.label_field, size=50,
                                           output_field=s.output_field,
                                           patches_field=s.patches_field),
                     "a batch of propagated labels to review")
        ctx.ops.notify(f"Labelled {res['labelled']:,} items from {res['examples']:,} examples "
                       f"({100 * res['confident']:.0f}% with confidence ≥ 0.9). The grid shows "
                       f"the 50 least confident: accept them with 'Visual Curation: accept "
                       f"propagated labels'", variant="success")
        return res


class ReviewPropagated(forms.FormOperator):
    form_label = "Review propagated labels"

    op_name = "review_propagated"
    op_label = "Visual Curation: review propagated labels"
    op_description = "Show the next batch of propagated labels to review"

    def form(self, ctx, inputs):
        if not forms.has_dataset(ctx, inputs):
            return
        s = propagate_settings(ctx)
        if not _label_field_input(ctx, inputs, s):
            return
        prop = inputs.int("size", default=50, label="Batch size", min=1, max=MAX_BATCH)
        if not forms.check(inputs, prop, oc.number_problem(s.size, 1, MAX_BATCH, integer=True,
                                                           subject="The batch size")):
            return
        forms.add_choice(inputs, "order", list(ORDERS.items()), "Order",
                         default="least_confident")
        inputs.str("output_field", default=vcp.OUTPUT_FIELD, label="Propagated field")

    def execute(self, ctx):
        s = propagate_settings(ctx)
        batch = vcp.review_batch(ctx.view, s.label_field, size=s.size, order=s.order,
                                 output_field=s.output_field, patches_field=s.patches_field)
        results.show(ctx, batch, "a batch of propagated labels to review")
        n = len(batch)
        ctx.ops.notify(f"{n} items to review" if n else "Nothing left to review",
                       variant="info" if n else "success")
        return {"items": n}


class AcceptPropagated(forms.FormOperator):
    form_label = "Accept propagated labels"

    op_name = "accept_propagated"
    op_label = "Visual Curation: accept propagated labels"
    op_description = ("Copy the propagated labels of the current view (or the selected items) "
                      "into the label field where it is still empty")

    def form(self, ctx, inputs):
        if not forms.has_dataset(ctx, inputs):
            return
        s = propagate_settings(ctx)
        if not _label_field_input(ctx, inputs, s):
            return
        n = len(ctx.selected or []) or len(ctx.view)
        what = "selected items" if ctx.selected else "items of the current view"
        inputs.view("vc_preview", types.Notice(
            label=f"The {n:,} {what}: empty labels are filled (tagged 'vc_propagated'); "
                  "labels already there are kept"))
        inputs.bool("next_batch", default=True, label="Then show the next batch")

    def execute(self, ctx):
        s = propagate_settings(ctx)
        n = vcp.accept_propagated(ctx.view, s.label_field, patches_field=s.patches_field,
                                  ids=list(ctx.selected) if ctx.selected else None)
        ctx.ops.reload_samples()
        if ctx.params.get("next_batch", True):
            results.show(ctx, vcp.review_batch(ctx.dataset, s.label_field, size=50,
                                               patches_field=s.patches_field),
                         "a batch of propagated labels to review")
        ctx.ops.notify(f"Filled {n:,} labels", variant="success")
        return {"filled": n}


class SetLabel(forms.FormOperator):
    form_label = "Set label"

    op_name = "set_label"
    op_label = "Visual Curation: set label of selected samples"
    op_description = ("Give the selected samples a label (e.g. the right class of a rejected "
                      "propagated label); the next propagation uses them as examples")

    def form(self, ctx, inputs):
        if not forms.has_dataset(ctx, inputs):
            return
        if not ctx.selected:
            forms.error_form(inputs, "Select the samples to label in the grid first")
            return
        s = propagate_settings(ctx)
        if not _label_field_input(ctx, inputs, s, objects=False):
            return
        field = s.label_field
        classes = sorted(c for c in ctx.dataset.distinct(f"{field}.label") if c)
        lab = inputs.str("label", label="Label", required=True,
                         view=types.AutocompleteView(choices=[types.Choice(c, label=c)
                                                              for c in classes]))
        if not str(ctx.params.get("label") or "").strip():
            forms.invalid(inputs, lab, "Type or choose the label")
        inputs.view("vc_preview", types.Notice(label=f"{len(ctx.selected):,} selected samples"))

    def execute(self, ctx):
        field = propagate_settings(ctx).label_field
        n = vcp.set_labels(ctx.dataset, field, str(ctx.params["label"]).strip(),
                           ids=list(ctx.selected))
        ctx.ops.reload_samples()
        ctx.ops.notify(f"Labelled {n:,} samples '{ctx.params['label']}'", variant="success")
        return {"labelled": n}
