"""Shared bits of the operators: form helpers, input checks, progress from a worker thread.

Every check here returns a message that says what to do next; the operators turn it into an
invalid form property (the App shows the message and keeps the Execute button disabled, and the
SDK's ``execute_operator`` raises ``ExecutionError("Validation error. Path: … Reason: <message>")``)
instead of letting the engine raise a traceback at execution time.
"""
from __future__ import annotations

import queue
import threading
import traceback

import fiftyone.core.fields as fof
import fiftyone.core.labels as fol
import fiftyone.operators.types as types

MODEL_CHOICES = [
    ("demo", "demo — offline model shipped with the plugin (Fashion-MNIST CLIP)"),
    ("ViT-B-32", "ViT-B-32 — OpenAI CLIP architecture (needs its pretrained weights)"),
    ("ViT-B-16", "ViT-B-16"),
    ("ViT-L-14", "ViT-L-14"),
]
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


# ----------------------------------------------------------------------------- field choices

def label_fields(dataset, kinds=(fol.Classification,)):
    out = []
    schema = dataset.get_field_schema(embedded_doc_type=None)
    for name, field in schema.items():
        doc = getattr(field, "document_type", None)
        if doc is not None and issubclass(doc, kinds):
            out.append(name)
    return sorted(out)


def detection_fields(dataset):
    from ..core.fields import detection_fields as fields

    return fields(dataset)


def split_fields(dataset):
    """Sample fields that can name a split: strings, ints, bools and Classifications (not ours,
    not the built-ins)."""
    skip = {"id", "filepath", "tags", "metadata", "created_at", "last_modified_at"}
    out = []
    for name, field in dataset.get_field_schema().items():
        if name in skip or name.startswith("vc_") or name.startswith("_"):
            continue
        if isinstance(field, (fof.StringField, fof.IntField, fof.BooleanField)):
            out.append(name)
        elif isinstance(field, fof.EmbeddedDocumentField) and issubclass(
                field.document_type, fol.Classification):
            out.append(name)
    return sorted(out)


def field_kind(dataset, name):
    """A readable name of what ``name`` holds, or None when the dataset has no such field."""
    try:
        field = dataset.get_field(name)
    except Exception:  # noqa: BLE001
        return None
    if field is None:
        return None
    doc = getattr(field, "document_type", None)
    return doc.__name__ if doc is not None else type(field).__name__


def label_field_problem(dataset, name, want=fol.Classification, hint=""):
    """Why ``name`` cannot be used as a ``want`` label field (None when it can)."""
    kind = field_kind(dataset, name)
    if kind is None:
        return (f"The dataset has no field {name!r}. Choose one of its {want.__name__} fields"
                f"{hint}.")
    field = dataset.get_field(name)
    doc = getattr(field, "document_type", None)
    if doc is None or not issubclass(doc, want):
        return f"{name!r} holds {kind}, not {want.__name__}: choose a {want.__name__} field{hint}."
    return None


def has_sample_field(dataset, name):
    try:
        return dataset.has_sample_field(name)
    except Exception:  # noqa: BLE001
        return False


# ----------------------------------------------------------------------------- form helpers

def add_choice(inputs, name, choices, label, description=None, default=None, required=False,
               extra=()):
    """A dropdown. ``extra``: values accepted without being offered (so that a wrong value
    reaches the operator's own check, which explains it, rather than "Invalid enum value")."""
    dd = types.Dropdown(label=label, description=description)
    for c in choices:
        if isinstance(c, tuple):
            dd.add_choice(c[0], label=c[1])
        else:
            dd.add_choice(c, label=c)
    values = dd.values() + [v for v in extra if v not in dd.values()]
    return inputs.enum(name, values, default=default, required=required, label=label,
                       description=description, view=dd)


def error_form(inputs, message, label="Cannot run yet"):
    """Shows ``message`` and makes the form invalid (the Execute button stays disabled)."""
    inputs.view("vc_error", types.Error(label=label, description=message))
    prop = inputs.str("vc_blocker", required=True, view=types.HiddenView())
    prop.invalid = True
    prop.error_message = message
    return prop


def invalid(inputs, prop, message, label="Check this input"):
    """Marks one property invalid with ``message`` and shows the message under the form."""
    prop.invalid = True
    prop.error_message = message
    inputs.view(f"vc_error_{len(inputs.properties)}", types.Error(label=label,
                                                                 description=message))
    return prop


def delegation_choice(inputs, ctx, default_delegate=False):
    """The Brain-style "run now / delegate" radio."""
    choices = types.RadioGroup(orientation="horizontal")
    choices.add_choice(False, label="Run now",
                       description="Run in the App (keep this tab open)")
    choices.add_choice(True, label="Delegate",
                       description="Queue for an orchestrator: `fiftyone delegated launch`")
    inputs.bool("delegate", default=default_delegate, label="Execution", view=choices)


def resolve_delegation(ctx):
    """The form's "run now / delegate" choice; an SDK call's ``request_delegation=True`` wins.

    None (no choice made) leaves both modes open: FiftyOne forces immediate-only (or
    delegated-only) execution whenever ``resolve_delegation`` returns a bool.
    """
    if ctx.requesting_delegated_execution:
        return True
    delegate = ctx.params.get("delegate")
    return None if delegate is None else bool(delegate)


# ----------------------------------------------------------------------------- checks

def embeddings_runs(dataset, patches_field=None, need_clip=False):
    """Run configs of this dataset's embeddings of one view kind (``need_clip``: only those made
    by a CLIP model, which can embed text and images)."""
    from ..core.similarity import embeddings_runs as runs

    return runs(dataset, patches_field, need_text=need_clip)


def missing_embeddings_message(patches_field=None, need_clip=False):
    what = "CLIP embeddings" if need_clip else "embeddings"
    target = f" of the objects in {patches_field!r}" if patches_field else ""
    return (f"No {what}{target} on this dataset yet: run 'Visual Curation: compute embeddings'"
            f"{' in Object view' if patches_field else ''} first.")


def missing_analysis_message(field, analysis):
    return (f"No {field!r} field yet: run 'Visual Curation: run analyses' with "
            f"'{analysis}' first.")


def field_conflict(dataset, names, prefix=""):
    """The message of a user's own field blocking one Visual Curation writes, else None."""
    from ..core import fields as vcf

    try:
        vcf.check_writable(dataset, names, prefix=prefix)
    except vcf.FieldConflictError as e:
        return str(e).replace("pass overwrite=True", "use the SDK with overwrite=True")
    return None


def checkpoint_problem(model, pretrained):
    """A message when ``pretrained`` looks like a local checkpoint path that does not exist."""
    import os

    p = str(pretrained or "").strip()
    if not p:
        return None
    looks_like_path = os.sep in p or p.startswith("~") or p.lower().endswith(CHECKPOINT_SUFFIXES)
    if looks_like_path and not os.path.exists(os.path.expanduser(p)):
        return (f"No checkpoint file at {p!r}: give an existing path, or an open_clip pretrained "
                "tag such as laion2b_s34b_b79k")
    if model == "demo":
        from ..core.models import DEMO_CHECKPOINT

        if not looks_like_path and not DEMO_CHECKPOINT.exists():
            return f"The demo model's checkpoint is missing ({DEMO_CHECKPOINT})"
    return None


def declare_issue_list_type(dataset, path="vc_issues"):
    """Workaround for a core quirk: ``analyze`` writes ``vc_issues`` with ``set_values``, which
    infers the field from its first non-None value; when the first sample has no issue that is
    ``[]`` and the field becomes an untyped ``ListField``, which the App files under "OTHER"
    and cannot filter. Declares its element type (strings) from the data, keeping the Visual
    Curation mark and description. Never raises."""
    import fiftyone.core.fields as fof

    from ..core import fields as vcf

    try:
        field = dataset.get_field(path)
        if not isinstance(field, fof.ListField) or field.field is not None:
            return False
        description = field.description
        dataset.add_dynamic_sample_fields(fields=path)
        vcf.mark(dataset, path, description)
        return dataset.get_field(path).field is not None
    except Exception:  # noqa: BLE001 - the analysis itself succeeded
        return False


# ----------------------------------------------------------------------------- progress

def run_with_progress(ctx, fn, label):
    """Runs ``fn(progress=callback)``; yields App progress updates while it works.

    Delegated runs report through ``ctx.set_progress``; immediate runs run ``fn`` in a worker
    thread and yield ``set_progress`` operations from this generator. Returns ``fn``'s result
    through ``StopIteration.value`` (use ``result = yield from run_with_progress(...)``).
    """
    import fiftyone as fo

    def describe(pb):
        """(overall fraction, label) of a progress bar; analyses run one bar per step and
        say which (``pb.vc_step``: index, count, name)."""
        step = getattr(pb, "vc_step", None)
        if step is None:
            return pb.progress, f"{label}: {pb.iteration}/{pb.total}"
        i, n, name = step
        return ((i + (pb.progress or 0.0)) / n,
                f"{label}: {name} ({i + 1}/{n}), {pb.iteration}/{pb.total} items")

    if ctx.delegated:
        def cb(pb):
            frac, text = describe(pb)
            ctx.set_progress(progress=frac, label=text)
        return fn(progress=fo.report_progress(cb, dt=1.0))

    q = queue.Queue()
    box = {}

    def cb(pb):
        q.put(describe(pb))

    def work():
        try:
            box["result"] = fn(progress=fo.report_progress(cb, dt=0.5))
        except BaseException as e:  # noqa: BLE001 - re-raised in the operator's thread
            box["error"] = e
            box["tb"] = traceback.format_exc()
        finally:
            q.put(None)

    t = threading.Thread(target=work, name="vc-operator", daemon=True)
    t.start()
    yield ctx.ops.set_progress(label=label, progress=0.0)
    while True:
        item = q.get()
        if item is None:
            break
        progress, text = item
        yield ctx.ops.set_progress(label=text, progress=progress or 0.0)
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def drain(gen):
    """Runs a generator to its end; returns its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
