"""The curation operators: clean dataset (drop duplicate copies and samples with issues → a
saved view or a new dataset) and find split leakage. The views themselves come from
:mod:`visual_curation.core.curation`."""
from __future__ import annotations

from dataclasses import dataclass

import fiftyone.operators.types as types

from ..core import curation as vcc
from . import results
from . import common as oc
from . import forms


# ----------------------------------------------------------------------------- clean dataset

@dataclass(frozen=True)
class CleanSettings:
    has_dups: bool
    drop_duplicates: bool
    issues: list
    new_dataset: bool
    default_name: str
    name: str
    delete_originals: bool


def clean_settings(ctx):
    """``ctx.params`` with their defaults: drop the duplicate copies when a duplicates analysis
    ran, no issues, a saved view "clean" (or a new dataset "<dataset>-clean"), keep the
    originals."""
    p = ctx.params
    has_dups = oc.has_sample_field(ctx.dataset, "vc_duplicate")
    new_dataset = p.get("output") == "new_dataset"
    default_name = f"{ctx.dataset.name}-clean" if new_dataset else "clean"
    return CleanSettings(
        has_dups=has_dups, drop_duplicates=bool(p.get("drop_duplicates", has_dups)),
        issues=list(p.get("issues") or []), new_dataset=new_dataset, default_name=default_name,
        name=forms.name_param(ctx, "name", default_name),
        delete_originals=bool(p.get("delete_originals")))


class CleanDataset(forms.FormOperator):
    form_label = "Clean dataset"

    op_name = "clean_dataset"
    op_label = "Visual Curation: clean dataset"
    op_description = ("Drop duplicate copies and samples with chosen issues → a saved view or "
                      "a new dataset (originals are kept unless you tick the delete box)")

    def form(self, ctx, inputs):
        view = forms.target_view(ctx, inputs)
        if view is None:
            return
        if not oc.has_sample_field(ctx.dataset, "vc_issues"):
            forms.error_form(inputs, oc.NO_ISSUES)
            return
        s = clean_settings(ctx)
        inputs.bool("drop_duplicates", default=s.has_dups, label="Drop duplicate copies",
                    description="Samples with vc_duplicate = True (each group keeps one)"
                    if s.has_dups else "Run the 'duplicates' analysis first to use this")
        prop = forms.multi_choice(inputs, "issues", vcc.DROPPABLE_ISSUES,
                                  "Drop samples with these issues", [],
                                  description="Values of vc_issues")
        bad = [i for i in s.issues if i not in vcc.DROPPABLE_ISSUES]
        if bad:
            forms.invalid(inputs, prop, f"Unknown issues {bad}: choose among "
                                        f"{', '.join(vcc.DROPPABLE_ISSUES)}")
        if s.drop_duplicates and not s.has_dups:
            forms.error_form(inputs, oc.missing_analysis_message("vc_duplicate", "duplicates"))
        elif not s.drop_duplicates and not s.issues:
            forms.invalid(inputs, prop, "Nothing to drop: tick 'Drop duplicate copies' or "
                                        "choose issues")
        elif not bad:
            counts = vcc.clean_counts(view, s.drop_duplicates, s.issues)
            inputs.view("vc_preview", types.Notice(label=vcc.counts_text(counts)))

        out = types.RadioGroup()
        out.add_choice("saved_view", label="A saved view of the kept samples")
        out.add_choice("new_dataset", label="A new dataset (clone of the kept samples)")
        inputs.enum("output", out.values(), default="saved_view", label="Result", view=out)
        if s.new_dataset:
            import fiftyone as fo

            forms.name_input(inputs, "name", "New dataset name", s.name, s.default_name,
                             fo.dataset_exists, "dataset")
        else:
            forms.name_input(inputs, "name", "Saved view name", s.name, s.default_name,
                             ctx.dataset.has_saved_view, "saved view")
        inputs.bool("delete_originals", default=False,
                    label="Also DELETE the dropped samples from this dataset",
                    description="Cannot be undone. Leave unticked to keep every original.")
        if s.delete_originals:
            inputs.view("vc_delete_warning", types.Warning(
                label="The dropped samples will be deleted from this dataset"))

    def execute(self, ctx):
        s = clean_settings(ctx)
        out = vcc.clean(results.target(ctx), s.name, drop_duplicates=s.drop_duplicates,
                        issues=s.issues, new_dataset=s.new_dataset,
                        delete_originals=s.delete_originals)
        ctx.ops.reload_dataset()
        what = vcc.counts_text(out)
        if "saved_view" in out:
            # the saved view's stages: the App's list of saved views is refetched only after
            # this reload, so selecting it by name here would fail
            ctx.ops.set_view(view=ctx.dataset.load_saved_view(s.name))
            summary = f"Saved view {s.name!r}: {what}"
        else:
            summary = f"New dataset {s.name!r}, with the analysis: {what}"
            ctx.ops.open_dataset(s.name)
        ctx.ops.notify(summary, variant="success")
        return {**out, "summary": summary}

    def resolve_output(self, ctx):
        """The counts stay on screen after the run (the toast goes as the App reloads)."""
        outputs = types.Object()
        outputs.str("summary", label="Done", view=types.MarkdownView(read_only=True))
        return types.Property(outputs, view=types.View(label="Clean dataset"))


# ----------------------------------------------------------------------------- split leakage

@dataclass(frozen=True)
class LeakageSettings:
    #: the candidates: sample tags, and fields that can name a split
    tags: list
    fields: list
    default_by: str
    by_tags: bool
    default_tags: list
    split_tags: list
    #: as given (checked by the form), the default (the first candidate) and the one used
    given_field: str | None
    default_field: str | None
    split_field: str | None


def leakage_settings(ctx):
    """``ctx.params`` with their defaults: splits by a field (the first that can name a split)
    unless the dataset has tags and no such field; by tags, the usual split names."""
    p = ctx.params
    tags, fields = vcc.split_tags(ctx.dataset), vcc.split_fields(ctx.dataset)
    default_by = "tags" if tags and not fields else "field"
    default_tags = vcc.default_split_tags(tags)
    given = p.get("split_field")
    default_field = fields[0] if fields else None
    return LeakageSettings(
        tags=tags, fields=fields, default_by=default_by,
        by_tags=p.get("split_by", default_by) == "tags", default_tags=default_tags,
        split_tags=list(p.get("split_tags", default_tags) or []), given_field=given,
        default_field=default_field, split_field=given or default_field)


class FindLeakage(forms.FormOperator):
    form_label = "Find split leakage"

    op_name = "find_leakage"
    op_label = "Visual Curation: find split leakage"
    op_description = ("Near-duplicates that cross splits (a split field or tags): the "
                      "duplicate groups that span two splits, as the grid")

    def form(self, ctx, inputs):
        if forms.target_view(ctx, inputs) is None:
            return
        if not oc.has_sample_field(ctx.dataset, "vc_dup_group"):
            forms.error_form(inputs, oc.missing_analysis_message("vc_dup_group", "duplicates"))
            return
        if not len(ctx.dataset.exists("vc_dup_group").limit(1)):
            forms.error_form(inputs, "The last analysis found no near-duplicates "
                                     "(vc_dup_group is empty): nothing can leak across splits",
                             label="Nothing to find")
            return
        s = leakage_settings(ctx)
        by = types.RadioGroup(orientation="horizontal")
        by.add_choice("field", label="A split field")
        by.add_choice("tags", label="Sample tags")
        inputs.enum("split_by", by.values(), default=s.default_by, label="Splits are", view=by)
        if s.by_tags:
            prop = forms.multi_choice(inputs, "split_tags", s.tags, "Split tags", s.default_tags,
                                      description="Tags naming the splits (e.g. train, val, "
                                                  "test)")
            unknown = [t for t in s.split_tags if t not in s.tags]
            if not s.tags:
                forms.error_form(inputs, "No sample tags on this dataset: tag the splits "
                                         "(train, test…) or choose 'A split field'")
            elif len(s.split_tags) < 2:
                forms.invalid(inputs, prop, "Choose at least two split tags")
            elif unknown:
                forms.invalid(inputs, prop, f"Unknown tags {unknown}")
            return
        given = s.given_field
        prop = forms.add_choice(inputs, "split_field", s.fields, "Split field",
                                default=s.default_field,
                                description="A field whose values are the splits",
                                extra=[given] if given else ())
        if not s.fields and not given:
            forms.error_form(inputs, "No string/int field that could name a split: add one "
                                     "(e.g. 'split'), or use sample tags")
        elif given and given not in s.fields:
            kind = oc.field_kind(ctx.dataset, given)
            forms.invalid(inputs, prop, f"The dataset has no field {given!r}" if kind is None
                          else f"{given!r} holds {kind}: choose a string, integer or "
                               "Classification field")

    def execute(self, ctx):
        s = leakage_settings(ctx)
        view, leaky = vcc.leakage(results.target(ctx), split_field=s.split_field,
                                  split_tags=s.split_tags if s.by_tags else None)
        results.show(ctx, view, f"{len(view):,} samples of duplicate groups that span splits")
        n = len(view)
        ctx.ops.notify(f"{len(leaky)} duplicate groups span two or more splits ({n} samples)"
                       if leaky else "No leakage: no duplicate group spans two splits",
                       variant="warning" if leaky else "success")
        return {"groups": len(leaky), "samples": n}
