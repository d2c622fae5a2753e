"""The "delete results" operator: removes what Visual Curation wrote on this dataset."""
from __future__ import annotations

import fiftyone.operators.types as types

from . import forms


class DeleteRun(forms.FormOperator):
    form_label = "Delete Visual Curation results"

    op_name = "delete_run"
    op_label = "Visual Curation: delete results"
    op_description = ("Removes exactly the vc_ fields, run records and LanceDB tables of this "
                      "dataset")

    def form(self, ctx, inputs):
        from ..core import fields as vcf
        from ..core import runs as vcr

        if not forms.has_dataset(ctx, inputs):
            return
        ours, runs = vcf.our_fields(ctx.dataset), vcr.ours(ctx.dataset)
        if not ours and not runs:
            forms.error_form(inputs, "Nothing to delete: this dataset has no Visual Curation "
                                     "results", label="Nothing to do")
            return
        inputs.view("what", types.Notice(
            label=f"Deletes {len(ours)} Visual Curation fields, {len(runs)} run records and "
                  "their LanceDB tables. Your own fields and samples are kept."))
        prop = inputs.bool("confirm", default=False, required=True, label="I understand")
        if not ctx.params.get("confirm"):
            prop.invalid = True
            prop.error_message = "Tick 'I understand' to delete"

    def execute(self, ctx):
        from ..core import delete_run

        removed = delete_run(ctx.dataset)
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
