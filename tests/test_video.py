"""Core frames from real short videos built with OpenCV from real images (Tux Paint stamps):
camera-like motion, hard cuts, static stretches, a scene shared by two videos, broken files."""
from pathlib import Path

import cv2
import numpy as np
import pytest

import visual_curation as vc
from visual_curation.core import video as vcv

STAMPS = Path("/usr/share/tuxpaint/stamps")
FPS = 10
SIZE = (320, 240)


def _stamp(i):
    files = sorted(p for p in STAMPS.rglob("*.png") if "thumb" not in p.name)
    im = cv2.imread(str(files[i * 37 % len(files)]), cv2.IMREAD_UNCHANGED)
    if im.shape[2] == 4:  # composite on a coloured background so scenes differ in colour too
        alpha = im[:, :, 3:4] / 255.0
        bg = np.full_like(im[:, :, :3], [(60, 120, 200), (30, 160, 60), (200, 80, 40),
                                          (120, 40, 160)][i % 4])
        im = (im[:, :, :3] * alpha + bg * (1 - alpha)).astype(np.uint8)
    return cv2.resize(im, (SIZE[0] * 2, SIZE[1] * 2))


def _scene(img, seconds, motion="pan"):
    """Frames of a camera moving over ``img`` (pan, zoom or static)."""
    n = int(seconds * FPS)
    H, W = img.shape[:2]
    out = []
    for t in range(n):
        f = t / max(n - 1, 1)
        if motion == "pan":
            x, y, w, h = int(f * (W - SIZE[0] * 1.4)), int(f * 30), int(SIZE[0] * 1.4), int(SIZE[1] * 1.4)
        elif motion == "zoom":
            s = 1.8 - 0.5 * f
            w, h = int(SIZE[0] * s), int(SIZE[1] * s)
            x, y = (W - w) // 2, (H - h) // 2
        else:
            x, y, w, h = 0, 0, W, H
        out.append(cv2.resize(img[y:y + h, x:x + w], SIZE, interpolation=cv2.INTER_AREA))
    return out


def _write(path, frames):
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for f in frames:
        wr.write(f)
    wr.release()
    return path


@pytest.fixture()
def videos(tmp_path):
    a, b, c, d = (_stamp(i) for i in range(4))
    v1 = _write(tmp_path / "three_scenes.avi",
                _scene(a, 3, "pan") + _scene(b, 3, "zoom") + _scene(c, 3, "pan"))
    v2 = _write(tmp_path / "shares_scene_b.avi", _scene(d, 3, "pan") + _scene(b, 3, "zoom"))
    v3 = _write(tmp_path / "static.avi", _scene(a, 8, "static"))
    (tmp_path / "broken.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 10)
    (tmp_path / "empty.mp4").write_bytes(b"")
    return dict(v1=v1, v2=v2, v3=v3, broken=tmp_path / "broken.avi",
                empty=tmp_path / "empty.mp4")


def test_each_cut_yields_a_core_frame_and_static_stretches_do_not(videos):
    r = vcv.scan_video(str(videos["v1"]))
    assert r.error is None
    times = [t / 1000 for t, *_ in r.core_frames]
    assert len(times) == 3, times
    for t, (lo, hi) in zip(times, [(0, 3), (3, 6), (6, 9)]):
        assert lo <= t < hi, times
    static = vcv.scan_video(str(videos["v3"]))
    assert len(static.core_frames) == 1
    assert static.decoded == 8 * FPS


def test_extract_core_frames_dataset_and_shared_scene_duplicates(videos, tmp_path):
    import fiftyone as fo

    name = "vc-test-videos"
    for n in (name, name + "-core-frames"):
        if fo.dataset_exists(n):
            fo.delete_dataset(n)
    vds = fo.Dataset(name)
    vds.add_samples([fo.Sample(filepath=str(p)) for p in videos.values()])
    try:
        frames = vc.extract_core_frames(vds, output_dir=str(tmp_path / "frames"))
        assert len(frames) == 3 + 2 + 1
        errs = dict(zip([Path(p).name for p in vds.values("filepath")], vds.values("vc_error")))
        assert errs["broken.avi"] and errs["empty.mp4"] == "empty file (0 bytes)"
        assert errs["three_scenes.avi"] is None
        vid_of = dict(zip(vds.values("filepath"), vds.values("id")))
        one = frames.match({"vc_video_id": vid_of[str(videos["v1"])]})
        assert sorted(one.values("vc_scene")) == [0, 1, 2]
        assert all(0 <= t < 9 for t in one.values("vc_timestamp"))
        # re-running skips unchanged videos
        again = vc.extract_core_frames(vds, output_dir=str(tmp_path / "frames"))
        assert len(again) == 6 and again.info["vc_last_extraction"]["skipped"] == 3
        # the same scene in two videos lands in one duplicate group
        vc.compute_embeddings(frames, model="demo")
        vc.analyze(frames, analyses=["duplicates", "quality", "clusters"])
        b1 = one.match({"vc_scene": 1}).first()
        b2 = frames.match({"vc_video_id": vid_of[str(videos["v2"])], "vc_scene": 1}).first()
        assert b1.vc_dup_group is not None and b1.vc_dup_group == b2.vc_dup_group
        groups = [g for g in frames.values("vc_dup_group") if g is not None]
        assert len(groups) == 2  # only the shared scene
        # search works on core frames too
        assert len(vc.find_similar(frames, sample_id=b1.id, k=2)) == 2
    finally:
        for n in (name + "-core-frames", name):
            if fo.dataset_exists(n):
                ds = fo.load_dataset(n)
                vc.delete_run(ds)
                ds.delete()


def test_short_scenes_are_kept_and_the_cap_keeps_the_strongest_cuts(tmp_path):
    """Scenes of 1.2 s each (shorter than 60 s / max_per_minute) are all found; a lower cap
    keeps that many core frames in the minute."""
    imgs = [_stamp(i) for i in range(6)]
    frames = []
    for i, img in enumerate(imgs):
        frames += _scene(img, 1.2, ["pan", "zoom", "static"][i % 3])
    path = str(_write(tmp_path / "short_scenes.avi", frames))
    assert len(vcv.scan_video(path).scene_starts_ms) == 6
    capped = vcv.scan_video(path, max_per_minute=3)
    assert len(capped.scene_starts_ms) == len(capped.core_frames) == 3
    assert capped.scene_starts_ms[0] == 0.0
