"""Core frames: the frames that represent a video — one at each scene change (histogram distance
between sampled frames), at least one per scene, capped per minute — extracted as an image
dataset linked to the source videos, so that every image analysis works on them.

Each core frame sample carries ``vc_video_id``, ``vc_video_filepath``, ``vc_timestamp`` (seconds),
``vc_frame_number``, ``vc_scene`` and ``vc_change`` (the histogram distance that opened its scene).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from . import config as cfg
from . import fields as vcf
from . import images as vci

logger = logging.getLogger(__name__)

DEFAULTS = dict(
    sample_fps=4.0,        # frames examined per second of video
    cut_threshold=0.35,    # Bhattacharyya distance between consecutive samples that opens a scene
    drift_threshold=0.5,   # distance to the scene's first frame that opens a scene (slow fades)
    max_per_minute=30,     # at most this many core frames per minute of video
    min_scene_seconds=0.5,  # cuts closer than this to the previous one are merged
    thumb_side=160,        # frames are compared downscaled to this width
    jpeg_quality=92,
)


@dataclass
class _Scene:
    start_ms: float
    change: float
    best: tuple | None = None    # (sharpness, frame bgr, t_ms, frame_no)
    frames: int = 0


@dataclass
class VideoResult:
    core_frames: list = field(default_factory=list)  # [(t_ms, frame_no, bgr, scene, change)]
    scene_starts_ms: list = field(default_factory=list)  # where each scene was detected
    decoded: int = 0
    duration_s: float = 0.0
    error: str | None = None


def _signature(bgr, side):
    import cv2

    h, w = bgr.shape[:2]
    if w > side:
        bgr = cv2.resize(bgr, (side, max(1, int(h * side / w))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [12, 6, 6], [0, 180, 0, 256, 0, 256])
    cv2.normalize(hist, hist, 1.0, 0.0, cv2.NORM_L1)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    sharp = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    return hist, sharp, gray


def _distance(a, b):
    import cv2

    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


def scan_video(path, **params):
    """Reads one video once; returns its core frames (BGR arrays) and counts."""
    import cv2

    p = {**DEFAULTS, **params}
    res = VideoResult()
    if not os.path.exists(path):
        res.error = f"file not found: {path}"
        return res
    if os.path.getsize(path) == 0:
        res.error = "empty file (0 bytes)"
        return res
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            res.error = "cannot open video (unsupported or corrupt container)"
            return res
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        step_ms = 1000.0 / max(p["sample_fps"], 0.01)
        next_ms = 0.0
        prev_sig = None
        scene_sig = None
        scenes: list[_Scene] = []
        frame_no = -1
        last_ms = 0.0
        min_gap_ms = p["min_scene_seconds"] * 1000
        while True:
            ok = cap.grab()
            if not ok:
                break
            frame_no += 1
            res.decoded += 1
            t_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            if not t_ms and frame_no and fps:
                t_ms = frame_no * 1000.0 / fps
            last_ms = max(last_ms, t_ms)
            if t_ms + 1e-6 < next_ms:
                continue
            next_ms = t_ms + step_ms
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                continue
            sig, sharp, _ = _signature(bgr, p["thumb_side"])
            change = 0.0 if prev_sig is None else _distance(prev_sig, sig)
            drift = 0.0 if scene_sig is None else _distance(scene_sig, sig)
            new_scene = (not scenes or change >= p["cut_threshold"]
                         or drift >= p["drift_threshold"])
            if new_scene and scenes and t_ms - scenes[-1].start_ms < min_gap_ms:
                new_scene = False
                scene_sig = sig if drift >= p["drift_threshold"] else scene_sig
            if new_scene:
                scenes.append(_Scene(start_ms=t_ms, change=max(change, drift)))
                scene_sig = sig
            sc = scenes[-1]
            sc.frames += 1
            # the sharpest examined frame of the scene represents it (skips blurry transitions)
            if sc.best is None or sharp > sc.best[0] * 1.05:
                sc.best = (sharp, bgr.copy(), t_ms, frame_no)
            prev_sig = sig
        res.duration_s = last_ms / 1000.0
        if res.decoded == 0:
            res.error = "no decodable frames (zero-length or corrupt video)"
            return res
        scenes = _cap_per_minute(scenes, int(p["max_per_minute"]))
        res.scene_starts_ms = [sc.start_ms for sc in scenes]
        for i, sc in enumerate(scenes):
            if sc.best is not None:
                _, bgr, t_ms, fno = sc.best
                res.core_frames.append((t_ms, fno, bgr, i, sc.change))
        return res
    except cv2.error as e:  # noqa: PERF203
        res.error = f"cannot decode video: {e}"
        return res
    finally:
        cap.release()


def _cap_per_minute(scenes, cap):
    """At most ``cap`` scenes start in each minute of video: the weakest cuts of a minute
    over the cap are undone (their scene joins the one before; the sharper representative
    stays)."""
    cap = max(int(cap), 1)
    by_minute = {}
    for i, sc in enumerate(scenes):
        by_minute.setdefault(int(sc.start_ms // 60_000), []).append(i)
    drop = set()
    for rows in by_minute.values():
        movable = [i for i in rows if i > 0]
        over = len(rows) - cap
        if over > 0:
            drop.update(sorted(movable, key=lambda i: scenes[i].change)[:over])
    out = []
    for i, sc in enumerate(scenes):
        if i in drop and out:
            prev = out[-1]
            prev.frames += sc.frames
            if sc.best is not None and (prev.best is None or sc.best[0] > prev.best[0]):
                prev.best = sc.best
        else:
            out.append(sc)
    return out


def core_frames_name(video_dataset):
    return f"{video_dataset.name}-core-frames"


def extract_core_frames(video_collection, output_dir=None, dataset_name=None, progress=None,
                        overwrite=False, **params):
    """Extracts core frames of every video in ``video_collection``.

    Args:
        video_collection: a FiftyOne video dataset or view
        output_dir: where the frame JPEGs go (default: under the FiftyOne config dir)
        dataset_name: the linked image dataset (default ``"<video dataset>-core-frames"``)
        progress: None/True/False or a FiftyOne progress callback
        **params: see ``DEFAULTS`` (sample_fps, cut_threshold, drift_threshold,
            max_per_minute, min_scene_seconds)

    Returns:
        the image dataset of core frames (a re-run only processes new or changed videos)
    """
    import cv2
    import fiftyone as fo
    import fiftyone.core.utils as fou

    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"Unknown parameters {sorted(unknown)}; see DEFAULTS")
    if video_collection.media_type != "video":
        raise ValueError("extract_core_frames needs a video dataset or view")
    vds = video_collection._dataset
    vcf.check_writable(vds, [cfg.ERROR_FIELD, "vc_core_frames"], overwrite=overwrite)
    name = dataset_name or core_frames_name(vds)
    if fo.dataset_exists(name):
        frames_ds = fo.load_dataset(name)
    else:
        frames_ds = fo.Dataset(name)
        frames_ds.persistent = vds.persistent
    frames_ds.info["vc_source_dataset"] = vds.name
    frames_ds.info["vc_source_dataset_id"] = str(vds._doc.id)
    frames_ds.save()
    out_root = output_dir or os.path.join(cfg.fiftyone_config_dir(), "visual_curation",
                                          "core_frames", str(vds._doc.id))
    os.makedirs(out_root, exist_ok=True)

    vids, paths = video_collection.values(["id", "filepath"])
    done = {}
    if frames_ds.has_sample_field("vc_video_id"):
        for vid, fp in zip(*frames_ds.values(["vc_video_id", "vc_video_fingerprint"])):
            done[vid] = fp
    errors, counts = {}, {}
    stats = dict(videos=len(vids), processed=0, skipped=0, frames_decoded=0, core_frames=0,
                 errors=0, seconds=0.0)
    t0 = time.time()
    with fou.ProgressBar(total=len(vids), progress=progress, iters_str="videos") as pb:
        for vid, path in pb(list(zip(vids, paths))):
            fp = vci.file_fingerprint(path)
            if fp is not None and done.get(vid) == fp:
                stats["skipped"] += 1
                continue
            res = scan_video(path, **params)
            stats["frames_decoded"] += res.decoded
            old = frames_ds.match({"vc_video_id": vid}) if frames_ds.has_sample_field(
                "vc_video_id") else None
            if old is not None and len(old):
                frames_ds.delete_samples(old)
            if res.error:
                errors[vid] = res.error
                counts[vid] = 0
                continue
            vdir = os.path.join(out_root, vid)
            os.makedirs(vdir, exist_ok=True)
            samples = []
            for t_ms, fno, bgr, scene, change in res.core_frames:
                fpath = os.path.join(vdir, f"{fno:08d}.jpg")
                cv2.imwrite(fpath, bgr, [cv2.IMWRITE_JPEG_QUALITY, params.get(
                    "jpeg_quality", DEFAULTS["jpeg_quality"])])
                samples.append(fo.Sample(
                    filepath=fpath, vc_video_id=vid, vc_video_filepath=path,
                    vc_video_fingerprint=fp, vc_timestamp=round(t_ms / 1000.0, 3),
                    vc_frame_number=int(fno) + 1, vc_scene=int(scene),
                    vc_change=round(float(change), 4)))
            frames_ds.add_samples(samples, progress=False)
            counts[vid] = len(samples)
            stats["processed"] += 1
            stats["core_frames"] += len(samples)
    stats["errors"] = len(errors)
    stats["seconds"] = round(time.time() - t0, 3)
    if counts:
        vcf.set_sample_values_by_id(vds, "vc_core_frames", counts,
                                    description="Visual Curation: number of core frames")
    if errors or vds.has_sample_field(cfg.ERROR_FIELD):
        mapping = {v: None for v in counts if v not in errors}
        mapping.update(errors)
        vcf.set_sample_values_by_id(vds, cfg.ERROR_FIELD, mapping,
                                    description="Visual Curation: why this video could not be "
                                                "processed")
    for f in ("vc_video_id", "vc_video_filepath", "vc_timestamp", "vc_frame_number", "vc_scene",
              "vc_change", "vc_video_fingerprint"):
        vcf.mark(frames_ds, f)
    frames_ds.info["vc_last_extraction"] = stats
    frames_ds.save()
    logger.info("extract_core_frames: %s", stats)
    return frames_ds


def raw_decode_fps(path):
    """OpenCV's own decode speed on ``path`` (grab every frame), frames/s — the ceiling."""
    import cv2

    cap = cv2.VideoCapture(path)
    n = 0
    t = time.perf_counter()
    while cap.grab():
        n += 1
    cap.release()
    return n / max(time.perf_counter() - t, 1e-9), n


def is_core_frames(dataset):
    """Whether ``dataset`` is a core-frames dataset made by :func:`extract_core_frames`."""
    try:
        return bool((dataset.info or {}).get("vc_source_dataset")) and dataset.has_sample_field(
            "vc_video_id")
    except Exception:  # noqa: BLE001
        return False


def _frame_count(video_sample):
    meta = video_sample.metadata
    n = getattr(meta, "total_frame_count", None) if meta is not None else None
    if n:
        return int(n)
    import cv2

    cap = cv2.VideoCapture(video_sample.filepath)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    finally:
        cap.release()
    return n or None


def source_of_frame(frames_dataset, frame_id):
    """Where a core frame comes from: ``dict(dataset, video_id, filepath, timestamp,
    frame_number, last_frame)`` (``last_frame``: the video's last frame number, for a clip
    from the core frame to the end). Raises ``ValueError`` saying what is missing."""
    import fiftyone as fo

    if not is_core_frames(frames_dataset):
        raise ValueError(f"{frames_dataset.name!r} is not a core-frames dataset: run "
                         "'extract core frames' on a video dataset and open its core frames")
    try:
        frame = frames_dataset[str(frame_id)]
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"No core frame with id {str(frame_id)[:40]!r} in "
                         f"{frames_dataset.name!r}") from None
    vid = frame.get_field("vc_video_id") if frame.has_field("vc_video_id") else None
    if not vid:
        raise ValueError(f"Sample {frame.id} is not a core frame (no vc_video_id)")
    name = frames_dataset.info["vc_source_dataset"]
    if not fo.dataset_exists(name):
        raise ValueError(f"The source video dataset {name!r} no longer exists")
    src = fo.load_dataset(name)
    try:
        video = src[vid]
    except (KeyError, ValueError):
        raise ValueError(f"The video of this core frame ({vid}) is no longer in "
                         f"{name!r}") from None
    fno = int(frame.get_field("vc_frame_number") or 1)
    last = _frame_count(video)
    return dict(dataset=name, video_id=vid, filepath=video.filepath,
                timestamp=frame.get_field("vc_timestamp"), frame_number=fno,
                last_frame=max(fno, last or fno))
