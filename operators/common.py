"""Shared non-form bits of the operators: the messages they show, field lookups, input checks,
progress from a worker thread.

Every check here returns a message that says what to do next; the operators turn it into an
invalid form property (see :mod:`.forms`: the App shows the message and keeps the Execute
button disabled, and the SDK's ``execute_operator`` raises ``ExecutionError("Validation error.
Path: … Reason: <message>")``) instead of letting the engine raise a traceback at execution time.
"""
from __future__ import annotations

import queue
import threading
import traceback

import fiftyone.core.labels as fol

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")

# ----------------------------------------------------------------------------- messages
# the labels of the operators that other operators' messages send the user to
COMPUTE_EMBEDDINGS = "Visual Curation: compute embeddings"
RUN_ANALYSES = "Visual Curation: run analyses"
EXTRACT_CORE_FRAMES = "Visual Curation: extract core frames"

NO_DATASET = "Open a dataset first"
#: ``.format(what=...)``: "samples", or "videos"
EMPTY_TARGET = ("The target is empty: choose a target (dataset, current view or selected "
                "samples) that has {what}.")
VIDEO_DATASET = (f"Video dataset: run '{EXTRACT_CORE_FRAMES}' first, then run this on the "
                 "core-frames dataset.")
NO_ISSUES = f"No 'vc_issues' field yet: run '{RUN_ANALYSES}' first."


def missing_embeddings_message(patches_field=None, need_clip=False):
    what = "CLIP embeddings" if need_clip else "embeddings"
    target = f" of the objects in {patches_field!r}" if patches_field else ""
    return (f"No {what}{target} on this dataset yet: run '{COMPUTE_EMBEDDINGS}'"
            f"{' in Object view' if patches_field else ''} first.")


def missing_analysis_message(field, analysis):
    return f"No {field!r} field yet: run '{RUN_ANALYSES}' with '{analysis}' first."


# ----------------------------------------------------------------------------- fields

def label_fields(dataset, kinds=(fol.Classification,)):
    """The sample fields holding ``kinds`` labels (Classification by default), sorted."""
    out = []
    schema = dataset.get_field_schema(embedded_doc_type=None)
    for name, field in schema.items():
        doc = getattr(field, "document_type", None)
        if doc is not None and issubclass(doc, kinds):
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


# ----------------------------------------------------------------------------- checks

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


def number_problem(value, lo, hi=None, integer=False, subject="The value"):
    """``"<subject> must be a [whole ]number from lo to hi"`` (``≥ lo`` without ``hi``) when
    ``value`` is not such a number (a bool is not), else None."""
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if ok and not isinstance(value, bool) and lo <= value and (hi is None or value <= hi):
        return None
    what = f"{subject} must be a {'whole ' if integer else ''}number"
    return f"{what} ≥ {lo}" if hi is None else f"{what} from {lo} to {hi}"


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
