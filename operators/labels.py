"""The label-fixing operators: accept suggested labels and undo (:mod:`visual_curation.core.labels`),
propagate labels from a few examples, review the next batch, accept it, and give selected
samples a label (:mod:`visual_curation.core.propagation`)."""
from __future__ import annotations

from dataclasses import dataclass

import fiftyone.operators.types as types

from ..core import labels as vcl
from . import common as oc
from . import forms
from .search import selected_objects


@dataclass(frozen=True)
class LabelSettings:
    patches_field: str | None
    label_field: str | None
    #: "selected" (the selected samples / objects) or "view" (the current view)
    scope: str
    #: the selected samples (image view) or objects (object view)
    selection: list
    ids: list | None
    min_confidence: float
    cluster: object
    level: int | None


def _analysed_label_field(dataset, patches_field):
    from ..core import runs as vcr
    from ..core.analyze import analysis_run_key

    conf = vcr.load_config(dataset, analysis_run_key(patches_field)) or {}
    return conf.get("label_field")


def label_settings(ctx):
    """``ctx.params`` with their defaults: the label field the last analysis read (else the
    first Classification field), the selection when there is one (else the current view),
    confidence 0.5, and the panel's card when the panel opened the form."""
    p = ctx.params
    pf = forms.patches_param(ctx)
    if pf:
        field, sel = selected_objects(ctx)
        sel = sel if field == pf else []
        label_field = pf
    else:
        sel = list(ctx.selected or [])
        fields = oc.label_fields(ctx.dataset)
        default = _analysed_label_field(ctx.dataset, None)
        label_field = p.get("label_field") or (default if default in fields else
                                               (fields[0] if fields else None))
    scope = p.get("scope") or ("selected" if sel else "view")
    conf = p.get("min_confidence", 0.5)
    return LabelSettings(patches_field=pf, label_field=label_field, scope=scope, selection=sel,
                         ids=sel if scope == "selected" else None, min_confidence=conf,
                         cluster=p.get("cluster"), level=p.get("level"))


def _collection(ctx, s):
    """The current view, or one card's items when the panel opened the form."""
    view = ctx.view
    if s.cluster is not None and s.level:
        from fiftyone import ViewField as F

        name = f"vc_cluster_{int(s.level)}"
        view = (view.filter_labels(s.patches_field, F(name) == s.cluster) if s.patches_field
                else view.match(F(name) == s.cluster))
    return view


def _label_inputs(ctx, inputs, s, with_confidence):
    """The shared part of the accept / undo forms; returns whether the form may run."""
    if not forms.has_dataset(ctx, inputs):
        return False
    pf, ok = forms.kind_choice(inputs, ctx, "Labels of")
    if not ok:
        return False
    if not pf:
        fields = oc.label_fields(ctx.dataset)
        prop = forms.add_choice(inputs, "label_field", fields, "Label field",
                                default=s.label_field, extra=[s.label_field] if s.label_field
                                else ())
        if not fields:
            forms.error_form(inputs, "No Classification field on this dataset")
            return False
        if not forms.check(inputs, prop, oc.label_field_problem(ctx.dataset, s.label_field)):
            return False
    scope = types.RadioGroup()
    what = "objects" if pf else "samples"
    n_sel = len(s.selection)
    scope.add_choice("selected", label=f"The selected {what} ({n_sel})")
    scope.add_choice("view", label="Every flagged label in the current view"
                     if with_confidence else "Every changed label in the current view")
    inputs.enum("scope", scope.values(), default=s.scope, label="Which labels", view=scope)
    if s.cluster is not None:
        inputs.view("vc_cluster_note", types.Notice(
            label=f"Only the items of cluster {s.cluster} (granularity {s.level})"))
    if s.scope == "selected" and not n_sel:
        forms.error_form(inputs, f"No {what} selected: select some in the grid, or choose "
                                 "the current view")
        return False
    return True


class AcceptSuggestions(forms.FormOperator):
    form_label = "Accept suggested labels"

    op_name = "accept_suggestions"
    op_label = "Visual Curation: accept suggested labels"
    op_description = ("Write vc_suggested_label into the label for the selected samples/objects "
                      "or every flagged mislabel; the previous label is kept and can be restored")

    def form(self, ctx, inputs):
        s = label_settings(ctx)
        if not _label_inputs(ctx, inputs, s, with_confidence=True):
            return
        if s.scope == "view":
            prop = inputs.float("min_confidence", default=0.5, min=0.0, max=1.0,
                                label="Least mislabel confidence",
                                view=types.SliderView(min=0, max=1, step=0.05))
            if not forms.check(inputs, prop, oc.number_problem(s.min_confidence, 0, 1,
                                                               subject="The confidence")):
                return
        try:
            n = _would_change(_collection(ctx, s), s)
        except ValueError as e:
            forms.error_form(inputs, str(e))
            return
        inputs.view("vc_preview", types.Notice(
            label=f"{n:,} labels will change; each keeps its previous value "
                  "(vc_previous_label) and the label tag 'vc_relabeled'"))

    def execute(self, ctx):
        s = label_settings(ctx)
        res = vcl.accept_suggestions(_collection(ctx, s), s.label_field, ids=s.ids,
                                     min_confidence=s.min_confidence,
                                     patches_field=s.patches_field)
        # the grid shows the changed samples (a new view: FiftyOne's grid does not redraw
        # the labels of samples it already shows)
        if res["sample_ids"]:
            ctx.ops.set_view(view=ctx.dataset.select(res["sample_ids"]))
        ctx.ops.notify(f"Changed {res['changed']:,} labels ({res['unchanged']:,} already "
                       "carried their suggestion); the grid shows them. 'Visual Curation: "
                       "undo relabel' restores them", variant="success")
        return {"changed": res["changed"], "unchanged": res["unchanged"]}


def _would_change(view, s):
    """How many labels :func:`accept_suggestions` would change (the form's preview)."""
    from fiftyone import ViewField as F

    if s.patches_field:
        from ..core.fields import label_list_path

        lp = label_list_path(view._dataset, s.patches_field)
        sug, lab, conf, ids = view.values([f"{lp}.vc_suggested_label", f"{lp}.label",
                                           f"{lp}.vc_mislabel", f"{lp}.id"])
        want = set(s.ids) if s.ids is not None else None
        return sum(1 for a, b, c, i in zip(*(sum((x or [] for x in col), []) for col in
                                              (sug, lab, conf, ids)))
                   if a and a != b and (i in want if want is not None else
                                        (c or 0) >= s.min_confidence))
    if not view._dataset.has_sample_field("vc_suggested_label"):
        raise ValueError(oc.missing_analysis_message("vc_suggested_label", "mislabels"))
    sub = view.select(s.ids) if s.ids is not None else view.match(
        F("vc_mislabel") >= s.min_confidence)
    return len(sub.match(F("vc_suggested_label") != F(f"{s.label_field}.label")))


class UndoRelabel(forms.FormOperator):
    form_label = "Undo relabel"

    op_name = "undo_relabel"
    op_label = "Visual Curation: undo relabel"
    op_description = "Restore the labels changed by 'accept suggested labels' exactly"

    def form(self, ctx, inputs):
        s = label_settings(ctx)
        if not _label_inputs(ctx, inputs, s, with_confidence=False):
            return
        try:
            view = vcl.relabeled(_collection(ctx, s), s.label_field,
                                 patches_field=s.patches_field)
            n = view.count_label_tags().get(vcl.RELABELED_TAG, 0)
        except ValueError as e:
            forms.error_form(inputs, str(e))
            return
        inputs.view("vc_preview", types.Notice(
            label=f"{n:,} changed labels in the current view" + (
                " (only the selected ones are restored)" if s.scope == "selected" else "")))

    def execute(self, ctx):
        s = label_settings(ctx)
        target = _collection(ctx, s)
        changed = vcl.relabeled(target, s.label_field, patches_field=s.patches_field)
        sample_ids = changed.values("id") if s.ids is None or s.patches_field else [
            i for i in s.ids if i in set(changed.values("id"))]
        n = vcl.undo_relabel(target, s.label_field, ids=s.ids, patches_field=s.patches_field)
        if sample_ids:   # ordered: differs from the view "accept" showed, so the grid redraws
            ctx.ops.set_view(view=ctx.dataset.select(sample_ids, ordered=True))
        ctx.ops.notify(f"Restored {n:,} labels; the grid shows them", variant="success")
        return {"restored": n}
