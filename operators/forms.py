"""Form pieces the operators share: the operator base classes, messages on the form, the target,
the image/object view choice, dropdowns, names, run-now/delegate.

A piece that reads a parameter comes with its resolver (``ctx`` → the value with its default),
which the operator's ``settings`` uses, so that the form and ``execute`` agree on every default.
"""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import common as oc


class FormOperator(foo.Operator):
    """An operator whose ``resolve_input`` is ``form(ctx, inputs)``: it adds the inputs and
    checks them, and may return at any point (a blocking problem shown, nothing more to ask)."""

    #: the title of the form
    form_label = ""
    #: the operator's name, its label in the App, and what it does
    op_name = op_label = op_description = ""
    #: more ``OperatorConfig`` options
    config_options: dict = {}

    @property
    def config(self):
        return foo.OperatorConfig(name=self.op_name, label=self.op_label,
                                  description=self.op_description, dynamic=True,
                                  **self.config_options)

    def resolve_input(self, ctx):
        inputs = types.Object()
        self.form(ctx, inputs)
        return types.Property(inputs, view=types.View(label=self.form_label))

    def form(self, ctx, inputs):
        raise NotImplementedError


class LongRunOperator(FormOperator):
    """A generator operator that may be delegated, with the form's "run now / delegate" choice
    (:func:`delegation_choice`)."""

    config_options = dict(execute_as_generator=True, allow_immediate_execution=True,
                          allow_delegated_execution=True)

    def resolve_delegation(self, ctx):
        """The form's choice; an SDK call's ``request_delegation=True`` wins.

        None (no choice made) leaves both modes open: FiftyOne forces immediate-only (or
        delegated-only) execution whenever ``resolve_delegation`` returns a bool.
        """
        if ctx.requesting_delegated_execution:
            return True
        delegate = ctx.params.get("delegate")
        return None if delegate is None else bool(delegate)


# ----------------------------------------------------------------------------- messages

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


def check(inputs, prop, problem):
    """:func:`invalid` when there is a ``problem`` (a message); returns whether all is well."""
    if problem:
        invalid(inputs, prop, problem)
    return not problem


# ----------------------------------------------------------------------------- inputs

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


def multi_choice(inputs, name, choices, label, default, description=None):
    """A multiple-choice dropdown (a list of strings)."""
    dd = types.Dropdown(multiple=True, label=label)
    for c in choices:
        dd.add_choice(c, label=c)
    return inputs.list(name, types.String(), default=default, label=label,
                       description=description, view=dd)


def target_view(ctx, inputs, action="Process"):
    """The target (FiftyOne's target input, with the defaults of
    :func:`.results.target_input`), or None after showing why there is nothing to run on (no
    dataset, an empty target, videos)."""
    from . import results

    if ctx.dataset is None:
        error_form(inputs, oc.NO_DATASET)
        return None
    results.target_input(ctx, inputs, action)
    view = results.target(ctx)
    if len(view) == 0:
        error_form(inputs, oc.EMPTY_TARGET.format(what="samples"))
        return None
    if ctx.dataset.media_type == "video":
        error_form(inputs, oc.VIDEO_DATASET)
        return None
    return view


def has_dataset(ctx, inputs):
    """Whether a dataset is open (else says to open one)."""
    if ctx.dataset is None:
        error_form(inputs, oc.NO_DATASET)
        return False
    return True


def name_input(inputs, name, label, value, default, exists, what):
    """A name for something to create (``what``: "saved view", "dataset"): ``value`` is the
    resolved name; it must be given and ``exists(value)`` false."""
    prop = inputs.str(name, label=label, default=default)
    if not value:
        invalid(inputs, prop, f"Give the {what} a name")
    elif exists(value):
        invalid(inputs, prop, f"A {what} named {value!r} already exists: choose another name")
    return prop


def name_param(ctx, name, default):
    """The resolver of :func:`name_input`: the given name (stripped), else ``default``."""
    return str(ctx.params.get(name, default) or "").strip()


def delegation_choice(inputs, default_delegate=False):
    """The Brain-style "run now / delegate" radio (see :class:`LongRunOperator`)."""
    choices = types.RadioGroup(orientation="horizontal")
    choices.add_choice(False, label="Run now",
                       description="Run in the App (keep this tab open)")
    choices.add_choice(True, label="Delegate",
                       description="Queue for an orchestrator: `fiftyone delegated launch`")
    inputs.bool("delegate", default=default_delegate, label="Execution", view=choices)


# ----------------------------------------------------------------------------- image / object view

def patches_param(ctx):
    """The resolver of :func:`kind_choice`: the Detections field of an Object-view run (the
    given one, else the first), or None for Image view."""
    if ctx.params.get("kind") != "objects":
        return None
    given = ctx.params.get("patches_field")
    if given:
        return given
    from ..core.fields import detection_fields

    dets = detection_fields(ctx.dataset)
    return dets[0] if dets else None


def kind_choice(inputs, ctx, label):
    """The image / object view radio and, for objects, the Detections field. Returns
    ``(patches_field or None, ok)``."""
    from ..core.fields import detection_fields

    kind = types.RadioGroup(orientation="horizontal")
    kind.add_choice("images", label="Image view")
    kind.add_choice("objects", label="Object view (detection crops)")
    inputs.enum("kind", kind.values(), default="images", label=label, view=kind)
    if ctx.params.get("kind") != "objects":
        return None, True
    dets = detection_fields(ctx.dataset)
    if not dets:
        error_form(inputs, "Object view needs a Detections field on the dataset; choose "
                           "Image view.")
        return None, False
    given = ctx.params.get("patches_field")
    prop = add_choice(inputs, "patches_field", dets, "Detections field", default=dets[0],
                      extra=[given] if given else ())
    if given and given not in dets:
        import fiftyone.core.labels as fol

        invalid(inputs, prop, oc.label_field_problem(ctx.dataset, given, fol.Detections))
        return None, False
    return patches_param(ctx), True
