"""The video operators: extract core frames (a linked image dataset of one frame per scene)
and open a core frame's source video at its time."""
from __future__ import annotations

from dataclasses import dataclass

import fiftyone.operators.types as types

from . import results
from . import common as oc
from . import forms

# the extraction parameters of the form: (name, label, default, min, max, is_int, description)
VIDEO_PARAMS = (
    ("sample_fps", "Frames examined per second", 4.0, 0.1, 60.0, False,
     "How many frames per second of video are compared; more finds shorter scenes"),
    ("cut_threshold", "Cut threshold", 0.35, 0.01, 1.0, False,
     "Colour-histogram distance between consecutive frames that opens a new scene "
     "(lower: more core frames)"),
    ("drift_threshold", "Drift threshold", 0.5, 0.01, 1.0, False,
     "Distance to the scene's first frame that opens a new scene (slow fades, pans)"),
    ("max_per_minute", "At most per minute", 30, 1, 600, True,
     "Cap on core frames per minute of video"),
    ("min_scene_seconds", "Shortest scene (seconds)", 0.5, 0.0, 60.0, False,
     "Cuts closer than this to the previous one are merged"),
)


OPEN_RESULT = True  # switch the App to the core frames when done


# ----------------------------------------------------------------------------- extract

@dataclass(frozen=True)
class FramesSettings:
    #: the VIDEO_PARAMS values as given (the form checks them)
    values: dict
    dataset_name: str
    default_name: str
    open_result: bool

    def extraction_params(self):
        """The checked values as ``extract_core_frames`` keywords."""
        return {name: int(self.values[name]) if is_int else float(self.values[name])
                for name, _, _, _, _, is_int, _ in VIDEO_PARAMS}


def frames_settings(ctx):
    """``ctx.params`` with their defaults: VIDEO_PARAMS, the core-frames dataset
    (``<dataset>-core-frames``), open it when done."""
    from ..core.video import core_frames_name

    default = core_frames_name(ctx.dataset)
    return FramesSettings(
        values={name: ctx.params.get(name, default) for name, _, default, *_ in VIDEO_PARAMS},
        dataset_name=forms.name_param(ctx, "dataset_name", default), default_name=default,
        open_result=bool(ctx.params.get("open_result", OPEN_RESULT)))


class ExtractCoreFrames(forms.LongRunOperator):
    form_label = "Extract core frames"

    op_name = "extract_core_frames"
    op_label = oc.EXTRACT_CORE_FRAMES
    op_description = ("One frame per scene of each video (capped per minute) → a linked image "
                      "dataset '<dataset>-core-frames' to embed, analyse and search")

    def form(self, ctx, inputs):
        if not forms.has_dataset(ctx, inputs):
            return
        if ctx.dataset.media_type != "video":
            forms.error_form(inputs, f"{ctx.dataset.name!r} holds {ctx.dataset.media_type} "
                                     "samples, not videos: open a video dataset (or run "
                                     "'compute embeddings' directly on images).",
                             label="Not a video dataset")
            return
        results.target_input(ctx, inputs, "Extract core frames of")
        view = results.target(ctx)
        if len(view) == 0:
            forms.error_form(inputs, oc.EMPTY_TARGET.format(what="videos"))
            return
        s = frames_settings(ctx)
        inputs.md("Reads each video once and keeps one sharp frame per scene. The frames go "
                  "to a linked image dataset (each carries `vc_video_id`, `vc_timestamp`); a "
                  "video that cannot be read gets `vc_error` and the others go on. Re-running "
                  "processes only new or changed videos. Next: open the core-frames dataset and "
                  "**compute embeddings**.", name="vc_help")
        for name, label, default, lo, hi, is_int, desc in VIDEO_PARAMS:
            add = inputs.int if is_int else inputs.float
            prop = add(name, default=default, min=lo, max=hi, label=label, description=desc)
            forms.check(inputs, prop, oc.number_problem(s.values[name], lo, hi, integer=is_int,
                                                        subject=label))
        self._name_input(ctx, inputs, s)
        inputs.bool("open_result", default=OPEN_RESULT, label="Open the core frames when done",
                    description="Switch the App to the core-frames dataset (run now only)")
        conflict = oc.field_conflict(ctx.dataset, ["vc_error", "vc_core_frames"])
        if conflict:
            forms.error_form(inputs, conflict)
        forms.delegation_choice(inputs, default_delegate=len(view) > 50)

    @staticmethod
    def _name_input(ctx, inputs, s):
        import fiftyone as fo

        name = s.dataset_name
        prop = inputs.str("dataset_name", default=s.default_name, label="Core-frames dataset",
                          description="The linked image dataset (created, or updated)")
        if not name:
            forms.invalid(inputs, prop, "Give the core-frames dataset a name")
        elif name == ctx.dataset.name:
            forms.invalid(inputs, prop, "The core frames need their own dataset: choose "
                                        "another name")
        elif fo.dataset_exists(name):
            info = fo.load_dataset(name).info or {}
            if info.get("vc_source_dataset") != ctx.dataset.name:
                forms.invalid(inputs, prop, f"A dataset named {name!r} exists and is not "
                                            "this dataset's core frames: choose another name")
            else:
                inputs.view("vc_update", types.Notice(
                    label=f"{name!r} exists: only new or changed videos are processed"))

    def execute(self, ctx):
        # FiftyOne drops a generator's return value: a delegated run (no App to talk to) runs
        # to the end here, so that its counts are stored with the operation
        if ctx.delegated:
            return oc.drain(self._run(ctx))
        return self._run(ctx)

    def _run(self, ctx):
        from ..core import extract_core_frames

        view = results.target(ctx)
        s = frames_settings(ctx)
        params = s.extraction_params()
        frames = yield from oc.run_with_progress(
            ctx, lambda progress: extract_core_frames(
                view, dataset_name=s.dataset_name, progress=progress, **params),
            "Extracting core frames")
        stats = dict(frames.info.get("vc_last_extraction") or {})
        failed = view.exists("vc_error") if view.has_field("vc_error") else None
        errors = dict(zip(*failed.values(["filepath", "vc_error"]))) if failed else {}
        out = {"dataset": frames.name, "videos": stats.get("videos", len(view)),
               "processed": stats.get("processed", 0), "skipped": stats.get("skipped", 0),
               "core_frames": stats.get("core_frames", 0), "total_core_frames": len(frames),
               "errors": len(errors), "error_videos": dict(list(errors.items())[:20]),
               "seconds": stats.get("seconds")}
        out["summary"] = (
            f"{out['processed']} videos processed ({out['skipped']} unchanged), "
            f"{out['core_frames']} core frames → {frames.name!r} ({out['total_core_frames']} "
            f"in all); {out['errors']} videos with errors"
            + (" (see their vc_error)" if errors else ""))
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            yield ctx.ops.notify(f"Core frames: {out['summary']}. Next: '{oc.COMPUTE_EMBEDDINGS}' "
                                 "on the core frames",
                                 variant="warning" if errors else "success")
            if s.open_result:
                yield ctx.ops.open_dataset(frames.name)
        return out

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="Result")
        outputs.str("dataset", label="Core-frames dataset")
        return types.Property(outputs)


# ----------------------------------------------------------------------------- open source video

def core_frame_id(ctx):
    """The core frame to open: the ``frame_id`` param, else the sample open in the modal, else
    the only selected sample. ``(id or None, why not)``."""
    given = ctx.params.get("frame_id")
    if given:
        return str(given), None
    if ctx.current_sample:
        return ctx.current_sample, None
    selected = list(ctx.selected or [])
    if len(selected) == 1:
        return selected[0], None
    if selected:
        return None, f"{len(selected)} samples are selected: select exactly one core frame"
    return None, "Open a core frame (click it in the grid) or select one, then run this again"


class OpenSourceVideo(forms.FormOperator):
    """Opens the video a core frame comes from, at the frame's time.

    The App's sample modal cannot be told to seek within a video, but it plays a clip from
    the clip's first frame: this operator shows a clips view of that one video whose clip
    starts at the core frame (``to_clips([[(frame_number, last_frame)]])``, to the end of the
    video), and switches the App to the source video dataset with that view: one click on the
    clip plays it. The App switches datasets after the operator returns and resets the view
    when it arrives, so the view is set by a second step (``show_clip`` param) that re-queues
    itself until the App is on the video dataset (at most ``MAX_WAIT_STEPS`` times).
    """

    form_label = "Open source video"
    #: times the second step re-queues itself while the App is still on the core frames
    MAX_WAIT_STEPS = 40

    op_name = "open_source_video"
    op_label = "Visual Curation: open source video"
    op_description = ("The video of the core frame open in the modal (or selected), from "
                      "that frame's time")

    def resolve_placement(self, ctx):
        from ..core.video import is_core_frames

        if ctx.dataset is None or not is_core_frames(ctx.dataset):
            return None
        return types.Placement(
            types.Places.SAMPLES_VIEWER_ACTIONS,
            types.Button(label="Open source video at this frame", icon="movie",
                         prompt=False))

    def form(self, ctx, inputs):
        from ..core.video import is_core_frames, source_of_frame

        if ctx.params.get("show_clip"):          # second step, run by the operator itself
            inputs.obj("show_clip", label="Clip to show")
            return
        if not forms.has_dataset(ctx, inputs):
            return
        if not is_core_frames(ctx.dataset):
            forms.error_form(inputs, f"This dataset has no core frames: run "
                                     f"'{oc.EXTRACT_CORE_FRAMES}' on a video dataset, open its "
                                     "'-core-frames' dataset and click a frame.")
            return
        fid, why = core_frame_id(ctx)
        prop = inputs.str("frame_id", default=fid or "", label="Core frame id",
                          description="The frame open in the modal, or the one selected")
        if fid is None:
            forms.invalid(inputs, prop, why)
            return
        try:
            src = source_of_frame(ctx.dataset, fid)
        except ValueError as e:
            forms.invalid(inputs, prop, str(e))
            return
        name = src["filepath"].rsplit("/", 1)[-1]
        inputs.view("vc_where", types.Notice(
            label=f"Opens {name} in {src['dataset']!r} from {src['timestamp']:.1f} s "
                  f"(frame {src['frame_number']})"))

    def execute(self, ctx):
        import fiftyone as fo

        from ..core.video import source_of_frame

        pending = ctx.params.get("show_clip")
        if pending:
            return self._show_clip(ctx, pending)
        fid, why = core_frame_id(ctx)
        if fid is None:
            raise ValueError(why)
        src = source_of_frame(ctx.dataset, fid)
        videos = fo.load_dataset(src["dataset"])
        support = [src["frame_number"], src["last_frame"]]
        clips = videos.select(src["video_id"]).to_clips([[tuple(support)]])
        clip_id = clips.first().id
        if ctx.current_sample:
            ctx.ops.close_sample()  # a modal left open would look its frame up in the videos
        ctx.ops.open_dataset(videos.name)
        # the App switches datasets after this returns and resets the view on arrival, so the
        # clip view is set by a second step of this operator, run once the App is on the videos
        ctx.trigger(self.uri, params={"show_clip": dict(
            dataset=videos.name, video_id=src["video_id"], support=support,
            file=src["filepath"].rsplit("/", 1)[-1], timestamp=src["timestamp"], attempt=0)})
        return {"dataset": videos.name, "video_id": src["video_id"], "clip_id": clip_id,
                "timestamp": src["timestamp"], "frame_number": src["frame_number"],
                "support": support}

    def _show_clip(self, ctx, pending):
        import time

        import fiftyone as fo

        if ctx.dataset is None or ctx.dataset.name != pending["dataset"]:
            attempt = int(pending.get("attempt", 0))
            if attempt >= self.MAX_WAIT_STEPS:
                ctx.ops.notify(f"Open {pending['dataset']!r} to see the video", variant="warning")
                return {"shown": False}
            time.sleep(0.1)
            ctx.trigger(self.uri, params={"show_clip": dict(pending, attempt=attempt + 1)})
            return {"shown": False, "waiting": attempt + 1}
        videos = fo.load_dataset(pending["dataset"])
        clips = videos.select(pending["video_id"]).to_clips([[tuple(pending["support"])]])
        ctx.ops.set_view(view=clips)
        ctx.ops.notify(f"Click the clip to play {pending['file']} from "
                       f"{float(pending['timestamp']):.1f} s", variant="info")
        return {"shown": True, "clip_id": clips.first().id}
