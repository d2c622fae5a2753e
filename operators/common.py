"""Shared bits of the operators: target view, field choices, progress from a worker thread."""
from __future__ import annotations

import queue
import threading
import traceback

import fiftyone.core.labels as fol
import fiftyone.operators.types as types

MODEL_CHOICES = [
    ("demo", "demo — offline model shipped with the plugin (Fashion-MNIST CLIP)"),
    ("ViT-B-32", "ViT-B-32 — OpenAI CLIP architecture (needs its pretrained weights)"),
    ("ViT-B-16", "ViT-B-16"),
    ("ViT-L-14", "ViT-L-14"),
]


def label_fields(dataset, kinds=(fol.Classification,)):
    out = []
    schema = dataset.get_field_schema(embedded_doc_type=None)
    for name, field in schema.items():
        doc = getattr(field, "document_type", None)
        if doc is not None and issubclass(doc, kinds):
            out.append(name)
    return sorted(out)


def detection_fields(dataset):
    return label_fields(dataset, (fol.Detections,))


def add_choice(inputs, name, choices, label, description=None, default=None, required=False):
    dd = types.Dropdown(label=label, description=description)
    for c in choices:
        if isinstance(c, tuple):
            dd.add_choice(c[0], label=c[1])
        else:
            dd.add_choice(c, label=c)
    inputs.enum(name, dd.values(), default=default, required=required, label=label,
                description=description, view=dd)


def error_form(inputs, message, label="Cannot run yet"):
    """Shows ``message`` and makes the form invalid (the Execute button stays disabled)."""
    inputs.view("vc_error", types.Error(label=label, description=message))
    prop = inputs.str("vc_blocker", required=True, view=types.HiddenView())
    prop.invalid = True
    prop.error_message = message


def delegation_choice(inputs, ctx, default_delegate=False):
    """The Brain-style "run now / delegate" radio."""
    choices = types.RadioGroup(orientation="horizontal")
    choices.add_choice(False, label="Run now",
                       description="Run in the App (keep this tab open)")
    choices.add_choice(True, label="Delegate",
                       description="Queue for an orchestrator: `fiftyone delegated launch`")
    inputs.bool("delegate", default=default_delegate, label="Execution", view=choices)


def resolve_delegation(ctx, big=5000):
    delegate = ctx.params.get("delegate")
    if delegate is None:
        try:
            return len(ctx.target_view()) > big
        except Exception:  # noqa: BLE001
            return False
    return bool(delegate)


def run_with_progress(ctx, fn, label):
    """Runs ``fn(progress=callback)``; yields App progress updates while it works.

    Delegated runs report through ``ctx.set_progress``; immediate runs run ``fn`` in a worker
    thread and yield ``set_progress`` operations from this generator. Returns ``fn``'s result
    through ``StopIteration.value`` (use ``result = yield from run_with_progress(...)``).
    """
    import fiftyone as fo

    if ctx.delegated:
        def cb(pb):
            ctx.set_progress(progress=pb.progress, label=f"{label}: {pb.iteration}/{pb.total}")
        return fn(progress=fo.report_progress(cb, dt=1.0))

    q = queue.Queue()
    box = {}

    def cb(pb):
        q.put((pb.progress, f"{label}: {pb.iteration}/{pb.total}"))

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
