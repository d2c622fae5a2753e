"""The video operators, executed headlessly through FiftyOne's operator API on the real short
videos of ``test_video`` (three good ones, a broken and an empty file): extraction run now and
delegated, the form's checks, and opening a core frame's video at its time."""
import os
import shutil
from pathlib import Path

import pytest
import yaml

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionError
from test_operators import _run_generator
from test_video import FPS, _stamp, videos  # noqa: F401 - the fixture

import visual_curation as vc
from visual_curation.core import config as cfg
from visual_curation.panels.actions import source_video_params

REPO = Path(__file__).resolve().parents[1]
URI = "@visual-curation/curation"


def _delete(name):
    if fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        try:
            vc.delete_run(ds)
        finally:
            ds.delete()


@pytest.fixture()
def video_ds(videos, request):  # noqa: F811 - the fixture imported above
    """A persistent video dataset of the five files (other FiftyOne processes share the test
    database); deletes it, its core frames and their JPEGs afterwards."""
    name = f"vc-vops-{request.node.name}"[:90]
    for n in (name, name + "-core-frames"):
        _delete(n)
    vds = fo.Dataset(name, persistent=True)
    vds.add_samples([fo.Sample(filepath=str(p)) for p in videos.values()])
    yield vds
    out = os.path.join(cfg.fiftyone_config_dir(), "visual_curation", "core_frames",
                       str(vds._doc.id))
    _delete(name + "-core-frames")
    _delete(name)
    shutil.rmtree(out, ignore_errors=True)


def _rejected(name, **ctx):
    with pytest.raises(ExecutionError) as e:
        foo.execute_operator(f"{URI}/{name}", ctx=ctx)
    msg = str(e.value)
    assert msg.startswith("Validation error") and "Traceback" not in msg, msg
    return msg


def _by_name(vds):
    return {Path(p).name: i for p, i in zip(*vds.values(["filepath", "id"]))}


def _triggered(result, uri):
    reqs = result.executor.to_json()["requests"] if result.executor else []
    return [r.get("params") or {} for r in reqs if r.get("operator_uri") == uri]


def test_registered_and_listed_in_the_manifest():
    uris = {op.uri for op in foo.list_operators()}
    manifest = yaml.safe_load((REPO / "fiftyone.yml").read_text())["operators"]
    for name in ("extract_core_frames", "open_source_video"):
        assert f"{URI}/{name}" in uris and name in manifest
    conf = foo.get_operator(f"{URI}/extract_core_frames").config
    assert conf.execute_as_generator and conf.allow_delegated_execution
    assert conf.allow_immediate_execution


def test_extract_core_frames_run_now_reports_progress_errors_and_opens_the_frames(video_ds):
    vds = video_ds
    messages, out = _run_generator(f"{URI}/extract_core_frames", dataset=vds,
                                   params={"sample_fps": 4.0, "max_per_minute": 30})
    ops = [op for op, _ in messages]
    assert ops[0] == "set_progress" and ops.count("set_progress") >= 2
    assert "reload_dataset" in ops and "notify" in ops
    assert messages[-1] == ("open_dataset", {"dataset": vds.name + "-core-frames"})
    notify = next(p for op, p in messages if op == "notify")
    assert "3 videos processed" in notify["message"] and "2 videos with errors" in \
        notify["message"] and notify["variant"] == "warning"

    assert out["dataset"] == vds.name + "-core-frames"
    assert (out["videos"], out["processed"], out["errors"]) == (5, 3, 2)
    assert out["core_frames"] == out["total_core_frames"] == 3 + 2 + 1
    assert sorted(Path(p).name for p in out["error_videos"]) == ["broken.avi", "empty.mp4"]

    frames = fo.load_dataset(out["dataset"])
    assert frames.persistent and frames.info["vc_source_dataset"] == vds.name
    ids = _by_name(vds)
    per_video = {}
    for vid, t, fno in zip(*frames.values(["vc_video_id", "vc_timestamp", "vc_frame_number"])):
        per_video.setdefault(vid, []).append(t)
        assert isinstance(t, float) and 0 <= t < 9 and fno == round(t * FPS) + 1
    assert {k: len(v) for k, v in per_video.items()} == {
        ids["three_scenes.avi"]: 3, ids["shares_scene_b.avi"]: 2, ids["static.avi"]: 1}
    # the bad files are reported on their samples; the good ones have no error
    errs = dict(zip(*vds.values(["filepath", "vc_error"])))
    errs = {Path(k).name: v for k, v in errs.items()}
    assert errs["empty.mp4"] == "empty file (0 bytes)" and errs["broken.avi"]
    assert errs["three_scenes.avi"] is None
    assert dict(zip(*vds.values(["id", "vc_core_frames"])))[ids["three_scenes.avi"]] == 3


def test_extract_core_frames_delegated_on_selected_samples(video_ds):
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    vds = video_ds
    ids = _by_name(vds)
    chosen = [ids["three_scenes.avi"], ids["broken.avi"]]
    queued = foo.execute_operator(f"{URI}/extract_core_frames", ctx=dict(
        dataset=vds, selected=chosen, request_delegation=True,
        params={"view_target": "SELECTED_SAMPLES", "dataset_name": "vc-vops-delegated-frames",
                "cut_threshold": 0.3}))
    try:
        assert queued.delegated and not fo.dataset_exists("vc-vops-delegated-frames")
        svc = DelegatedOperationService()
        svc.execute_queued_operations(dataset_name=vds.name)
        ops = svc.list_operations(dataset_name=vds.name)
        assert len(ops) == 1 and ops[0].run_state == ExecutionRunState.COMPLETED, \
            [(op.run_state, op.result) for op in ops]
        res = svc.get(ops[0].id).result.result
        assert (res["videos"], res["processed"], res["errors"], res["core_frames"]) == \
            (2, 1, 1, 3)
        frames = fo.load_dataset("vc-vops-delegated-frames")
        assert set(frames.values("vc_video_id")) == {ids["three_scenes.avi"]}
        assert frames.info["vc_source_dataset"] == vds.name
    finally:
        _delete("vc-vops-delegated-frames")


def test_extract_core_frames_form_checks(video_ds, tmp_path):
    import cv2

    img = tmp_path / "still.png"
    cv2.imwrite(str(img), _stamp(0))
    images = fo.Dataset("vc-vops-images")
    images.add_sample(fo.Sample(filepath=str(img)))
    other = fo.Dataset("vc-vops-taken")
    try:
        msg = _rejected("extract_core_frames", dataset=images, params={})
        assert "not videos: open a video dataset" in msg
        msg = _rejected("extract_core_frames", dataset=video_ds,
                        params={"sample_fps": 0, "delegate": False})
        assert "Frames examined per second must be a number from 0.1 to 60.0" in msg
        msg = _rejected("extract_core_frames", dataset=video_ds,
                        params={"max_per_minute": 2.5})
        assert "whole number from 1 to 600" in msg
        msg = _rejected("extract_core_frames", dataset=video_ds,
                        params={"dataset_name": other.name})
        assert "exists and is not this dataset's core frames" in msg
        # embedding a video dataset points to the extraction
        msg = _rejected("compute_embeddings", dataset=video_ds, params={"model": "demo"})
        assert "extract core frames" in msg
    finally:
        images.delete()
        other.delete()


def test_open_source_video_opens_the_clip_from_the_frame(video_ds):
    vds = video_ds
    frames = vc.extract_core_frames(vds)
    ids = _by_name(vds)
    frame = frames.match({"vc_video_id": ids["three_scenes.avi"], "vc_scene": 2}).first()
    assert frame.vc_timestamp >= 6

    for ctx in (dict(current_sample=frame.id), dict(selected=[frame.id])):
        result = foo.execute_operator(f"{URI}/open_source_video",
                                      ctx=dict(dataset=frames, params={}, **ctx))
        out = result.result
        assert out["dataset"] == vds.name and out["video_id"] == ids["three_scenes.avi"]
        assert out["timestamp"] == frame.vc_timestamp
        assert out["support"] == [frame.vc_frame_number, 9 * FPS]
        assert _triggered(result, "open_dataset") == [{"dataset": vds.name}]
        # the App resets the view when it arrives on the other dataset: the view is set by a
        # second step of the operator, which waits (re-queues itself) until the App is there
        assert _triggered(result, "set_view") == []
        (step,) = _triggered(result, f"{URI}/open_source_video")
        early = foo.execute_operator(f"{URI}/open_source_video",
                                     ctx=dict(dataset=frames, params=step))
        assert early.result == {"shown": False, "waiting": 1}
        (again,) = _triggered(early, f"{URI}/open_source_video")
        assert again["show_clip"]["attempt"] == 1
        done = foo.execute_operator(f"{URI}/open_source_video",
                                    ctx=dict(dataset=vds, params=again))
        (view_params,) = _triggered(done, "set_view")
        clips = fo.DatasetView._build(vds, view_params["view"])
        clip = clips.first()
        assert len(clips) == 1 and out["clip_id"] and done.result["clip_id"]
        assert str(clip.sample_id) == ids["three_scenes.avi"]
        assert list(clip.support) == [frame.vc_frame_number, 9 * FPS]
        # the grid shows the clip (a modal opened in the same call would precede the view)
        assert _triggered(done, "open_sample") == []
        assert "from %.1f s" % frame.vc_timestamp in _triggered(done, "notify")[0]["message"]

    # a frame id given as a param (the cluster panel's Video button)
    result = foo.execute_operator(f"{URI}/open_source_video", ctx=dict(
        dataset=frames, params={"frame_id": frame.id}))
    assert result.result["clip_id"]
    # the modal's button shows only on core frames
    from fiftyone.operators.executor import ExecutionContext

    op = foo.get_operator(f"{URI}/open_source_video")
    placement = op.resolve_placement(ExecutionContext(request_params={
        "dataset_name": frames.name, "params": {}}))
    assert placement is not None and placement.place.value == "samples-viewer-actions"
    assert op.resolve_placement(ExecutionContext(request_params={
        "dataset_name": vds.name, "params": {}})) is None


def test_open_source_video_says_what_is_missing(video_ds):
    vds = video_ds
    frames = vc.extract_core_frames(vds)
    two = frames.limit(2).values("id")
    assert "no core frames" in _rejected("open_source_video", dataset=vds, params={},
                                         current_sample=vds.first().id)
    assert "select exactly one core frame" in _rejected(
        "open_source_video", dataset=frames, selected=two, params={})
    assert "Open a core frame" in _rejected("open_source_video", dataset=frames, params={})
    assert "No core frame with id" in _rejected(
        "open_source_video", dataset=frames, params={"frame_id": str(vds.first().id)})
    # the video was removed from the source dataset since the extraction
    vid = frames.first().vc_video_id
    vds.delete_samples([vid])
    assert "no longer in" in _rejected("open_source_video", dataset=frames,
                                       current_sample=frames.first().id, params={})


def test_cluster_cards_of_core_frames_link_to_their_video(video_ds):
    frames = vc.extract_core_frames(video_ds)
    fid = frames.first().id
    card = {"id": 0, "thumbs": [{"id": fid, "url": "x"}, {"id": "other", "url": "y"}]}
    assert source_video_params(frames, card) == {"frame_id": fid}
    assert source_video_params(frames, {"thumbs": []}) is None
    assert source_video_params(frames, card, patches_field="ground_truth") is None
    assert source_video_params(video_ds, card) is None
