"""The "run analyses" operator: the registry's analyses on the embeddings → ``vc_`` fields."""
from __future__ import annotations

import re
from dataclasses import dataclass

import fiftyone.operators.types as types

from ..core.analyzers import (ANALYSES, DEFAULT_THRESHOLD, FIELD_SPECS, ISSUES, ISSUES_FIELD,
                              LABEL_ANALYSES)
from . import results
from . import common as oc
from . import forms


def _and(names):
    """``a, b and c``"""
    names = list(names)
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def _field_list():
    """The fields an analysis writes, numbered ones folded (``vc_cluster_1..5``)."""
    out, numbered = [], {}
    for name in FIELD_SPECS:
        m = re.fullmatch(r"(.+_)(\d+)", name)
        if m:
            if m.group(1) not in numbered:
                out.append(m.group(1))
            numbered.setdefault(m.group(1), []).append(m.group(2))
        else:
            out.append(name)
    return [f"{n}{numbered[n][0]}..{numbered[n][-1]}" if n in numbered else n for n in out]


#: issues read from a score compared with a threshold (not flags such as duplicates)
SCORED_ISSUES = tuple(name for name, spec in ISSUES.items() if not spec.flag)
#: "mislabels and outliers": the analyses that need a label field
LABELLED = _and(LABEL_ANALYSES)
HELP = ("Reads the embeddings and writes "
        + ", ".join(f"`{n}`" for n in _field_list() if n != ISSUES_FIELD.name)
        + f" and `{ISSUES_FIELD.name}` (the issues whose score ≥ its threshold).")


@dataclass(frozen=True)
class AnalysisSettings:
    patches_field: str | None
    #: the Classification fields offered (Image view)
    labels: list
    #: Image view: the first of ``labels`` ("" when there is none)
    default_label: str
    label_field: str | None
    default_analyses: list
    #: as given (the form checks them), and those that will run
    requested: list
    analyses: list
    thresholds: dict


def _thresholds(given):
    out = {}
    for k, v in (given or {}).items():
        if k in ISSUES and v is not None:
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                continue  # the form's own check explains it
    return out


def analysis_settings(ctx):
    """``ctx.params`` with their defaults: Object view's Detections field, the label field
    (Image view: the first Classification field unless one, or "" for none, is given), the
    analyses (all that apply), the thresholds given."""
    p = ctx.params
    patches = forms.patches_param(ctx)
    labels = [] if patches else oc.label_fields(ctx.dataset)
    default_label = labels[0] if labels else ""
    if patches:
        label_field = patches
    else:
        label_field = p.get("label_field", default_label) or None
    default = [a for a in ANALYSES if label_field or a not in LABEL_ANALYSES]
    requested = p.get("analyses", default) or []
    run = [a for a in requested if a in ANALYSES and (label_field or a not in LABEL_ANALYSES)]
    return AnalysisSettings(patches_field=patches, labels=labels, default_label=default_label,
                            label_field=label_field,
                            default_analyses=default, requested=list(requested), analyses=run,
                            thresholds=_thresholds(p.get("thresholds")))


class RunAnalyses(forms.LongRunOperator):
    form_label = "Run analyses"

    op_name = "run_analyses"
    op_label = oc.RUN_ANALYSES
    op_description = (f"{_and(ANALYSES).capitalize()} → vc_ fields (filter the sidebar by "
                      f"{ISSUES_FIELD.name})")

    def form(self, ctx, inputs):
        from ..core.similarity import embeddings_runs

        view = forms.target_view(ctx, inputs)
        if view is None:
            return
        inputs.md(HELP, name="vc_help")
        patches, ok = forms.kind_choice(inputs, ctx, "Analyse")
        if not ok:
            return
        if not embeddings_runs(ctx.dataset, patches):
            forms.error_form(inputs, oc.missing_embeddings_message(patches))
            return
        s = analysis_settings(ctx)
        if patches is None and not self._label_input(ctx, inputs, s):
            return
        self._analyses_input(inputs, s)
        th = types.Object()
        from ..core.review import stored_thresholds

        kept = stored_thresholds(ctx.dataset, patches_field=patches)  # the last run's
        for issue in SCORED_ISSUES:
            th.float(issue, default=kept[issue], label=f"{issue}", min=0.0, max=1.0,
                     description=f"{ISSUES_FIELD.name} gets '{issue}' when "
                                 f"{ISSUES[issue].field} ≥ this")
        inputs.define_property("thresholds", th, label=f"Thresholds for {ISSUES_FIELD.name}",
                               description=f"Scores are confidences in [0, 1]; "
                                           f"{DEFAULT_THRESHOLD} at first, then the last "
                                           "run's (the cluster panel's sliders move them)")
        prefix = ""
        if patches:
            from ..core.fields import label_list_path

            prefix = label_list_path(ctx.dataset, patches) + "."
        conflict = oc.field_conflict(ctx.dataset, list(FIELD_SPECS), prefix=prefix)
        if conflict:
            forms.error_form(inputs, conflict)
        forms.delegation_choice(inputs, default_delegate=len(view) > 50000)

    @staticmethod
    def _label_input(ctx, inputs, s):
        """The label field dropdown of Image view; False when the given one cannot be used."""
        import fiftyone.core.labels as fol

        given = ctx.params.get("label_field")
        prop = forms.add_choice(
            inputs, "label_field", [("", f"(none: skip {LABELLED})")] + s.labels,
            "Label field", description=f"Classification field for {LABELLED}",
            default=s.default_label, extra=[given] if given else ())
        if s.label_field and s.label_field not in s.labels:
            forms.invalid(inputs, prop, oc.label_field_problem(
                ctx.dataset, s.label_field, fol.Classification,
                hint=" (for Detections, choose Object view)"))
            return False
        return True

    @staticmethod
    def _analyses_input(inputs, s):
        prop = forms.multi_choice(inputs, "analyses", ANALYSES, "Analyses", s.default_analyses,
                                  description=f"All by default; {LABELLED} need a label field")
        unknown = [a for a in s.requested if a not in ANALYSES]
        needs_labels = [a for a in s.requested if a in LABEL_ANALYSES]
        if unknown:
            forms.invalid(inputs, prop, f"Unknown analyses {unknown}: choose among "
                                        f"{', '.join(ANALYSES)}")
        elif not s.requested:
            forms.invalid(inputs, prop, "Choose at least one analysis")
        elif not s.label_field and len(needs_labels) == len(s.requested):
            forms.invalid(inputs, prop, f"{LABELLED.capitalize()} need a label field: choose "
                                        "one, or add other analyses")
        elif not s.label_field and needs_labels:
            inputs.view("vc_skip", types.Notice(
                label=f"{LABELLED.capitalize()} will be skipped: no label field"))

    def execute(self, ctx):
        from ..core import analyze

        view = results.target(ctx)
        s = analysis_settings(ctx)
        summary = yield from oc.run_with_progress(
            ctx, lambda progress: analyze(
                view, label_field=s.label_field, patches_field=s.patches_field,
                analyses=s.analyses, thresholds=s.thresholds, progress=progress),
            "Analysing")
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            issues = ", ".join(f"{k}: {v}" for k, v in (summary.get("issues") or {}).items())
            yield ctx.ops.notify(f"Analyses done ({issues}). Filter the sidebar by "
                                 f"{ISSUES_FIELD.name}, or open the Visual Curation panel",
                                 variant="success")
        return {"issues": summary.get("issues", {}), "seconds": summary.get("seconds")}
