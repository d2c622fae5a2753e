"""Image quality from pixels: blur, too dark, too bright (washed out).

Per item (cropped to its box for patches, downscaled to at most ``quality_max_side`` px):

* **dark** - ``hi`` = the 99.9th percentile of luminance: the brightest content. An image is dark
  when even its brightest pixels are dim. Mean luminance is not used, so black-background
  images (Fashion-MNIST, night skies) with bright content are not dark.
* **bright** - ``depth`` = 255 - the 0.1th percentile of luminance: how far below white the
  darkest content goes. A washed-out image has no dark content at all. White-background clip art
  still has dark outlines, so it is not bright.
* **blur** - edge steepness: for pixels whose local luminance range (in a window of 10 % of the
  image size) is at least 8 levels, the ratio gradient / local range; its 99th percentile is the
  steepness of the sharpest edges (about 1/edge-width in pixels). Reported per pixel and per image
  size (times the longer side). An image is blurry when its sharpest edges are both wider than
  ``blur_max_edge_px`` pixels *and* wider than 1/``blur_min_edges_per_side`` of the image size.
  Images with no edges at all (flat) get blur 0: they are dark/bright/empty, not blurry.

Each threshold is capped dataset-relatively: it never exceeds ``rel`` x the dataset median of the
same statistic (``quality_relative``), so in a dataset where everything is soft (upscaled
thumbnails) or dim, only items much worse than typical are flagged. Confidences are a logistic
of the log-margin to the threshold: 0.5 exactly at the threshold.
"""
from __future__ import annotations

import numpy as np

from . import pixels
from .base import (AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IncrementalInput,
                   IssueSpec, jsonable, logistic, report)


def percentile(x: np.ndarray, q: float) -> float:
    """``np.percentile(x, q)`` (linear interpolation) by partial sorting."""
    pos = (len(x) - 1) * q / 100.0
    k = int(np.floor(pos))
    part = np.partition(x, [k, min(k + 1, len(x) - 1)])
    lo, hi = float(part[k]), float(part[min(k + 1, len(x) - 1)])
    return lo + (hi - lo) * (pos - k)


def pixel_stats(rgb: np.ndarray, max_side: int = 512, window: float = 0.10,
                min_range: float = 8.0) -> dict:
    """The per-image statistics quality confidences are computed from."""
    import cv2

    g = pixels.to_gray(rgb)
    h, w = g.shape
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        g = cv2.resize(g, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        h, w = g.shape
    cdf = np.bincount(g.ravel(), minlength=256).cumsum() / g.size
    lo = float(np.searchsorted(cdf, 0.001))
    hi = float(np.searchsorted(cdf, 0.999))
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, scale=0.125)    # exact: integer sums, then 1/8
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, scale=0.125)
    r = max(2, int(round(window * max(h, w) / 2)))
    ker = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))
    rng = cv2.subtract(cv2.dilate(g, ker), cv2.erode(g, ker))   # local range, uint8
    m = rng >= min_range
    if np.count_nonzero(m) >= 10:
        gxm, gym = gx[m], gy[m]
        steep = percentile(np.sqrt(gxm * gxm + gym * gym) / rng[m].astype(np.float32), 99)
    else:
        steep = float("nan")  # flat image: no edges to judge
    return dict(lo=lo, hi=hi, steep_px=steep, steep_size=steep * max(h, w),
                width=int(rgb.shape[1]), height=int(rgb.shape[0]))


def confidences(lo, hi, sp, ss, thr, p):
    """(blur, dark, bright) confidences from pixel statistics and the dataset's thresholds
    (``thresholds`` in the analyzer's summary)."""
    dark = logistic(np.log((thr["dark_level"] + 1) / (hi + 1)) / p["quality_softness"])
    bright = logistic(np.log((thr["bright_depth"] + 1) / (255.0 - lo + 1)) / p["quality_softness"])
    edges = np.isfinite(sp)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.minimum(np.log(thr["blur_steep_px"] / np.maximum(sp, 1e-6)),
                            np.log(thr["blur_steep_size"] / np.maximum(ss, 1e-6)))
    blur = logistic(margin / p["blur_softness"])
    blur[~edges] = 0.0
    return blur, dark, bright


def stat_arrays(stats, rows):
    """(lo, hi, steep_px, steep_size) arrays of ``pixel_stats`` results for ``rows``."""
    return tuple(np.array([stats[i][k] for i in rows], np.float64)
                 for k in ("lo", "hi", "steep_px", "steep_size"))


class QualityAnalyzer(Analyzer):
    name = "quality"
    needs_pixels = True
    field_specs = (
        FieldSpec("vc_blur", "float", "Visual Curation: blur confidence (pixels)"),
        FieldSpec("vc_dark", "float", "Visual Curation: too-dark confidence (pixels)"),
        FieldSpec("vc_bright", "float", "Visual Curation: too-bright confidence (pixels)"))
    issues = (IssueSpec("blur", "vc_blur"), IssueSpec("dark", "vc_dark"),
              IssueSpec("bright", "vc_bright"))
    defaults = dict(
        dark_max_level=64.0,          # dark: brightest content (p99.9 luminance) below this ...
        bright_max_depth=16.0,        # bright: darkest content within this many levels of white
        blur_max_edge_px=5.0,         # blur: sharpest edges wider than this many pixels ...
        blur_min_edges_per_side=22.5,  # ... and wider than 1/22.5 of the image's longer side
        quality_relative=0.4,         # dark/bright caps: <= 0.4 x the dataset median statistic
        blur_relative=0.75,           # blur caps: <= 0.75 x the dataset median steepness
        quality_softness=0.15,        # logistic scale of the log-margin (dark, bright)
        blur_softness=0.05,           # logistic scale of the log-margin (blur)
        quality_max_side=512,         # images are downscaled to this longer side first
    )
    param_help = dict(
        dark_max_level="an item is dark when its p99.9 luminance is below this (0-255)",
        bright_max_depth="an item is washed out when 255 - its p0.1 luminance is below this",
        blur_max_edge_px="blurry: the sharpest edges are wider than this many pixels ...",
        blur_min_edges_per_side="... and wider than (longer side / this)",
        quality_relative="dark/bright thresholds never exceed this x the dataset median",
        blur_relative="blur thresholds never exceed this x the dataset median steepness",
        quality_softness="logistic scale (log units) for dark/bright confidences",
        blur_softness="logistic scale (log units) for blur confidence",
        quality_max_side="longer side images are downscaled to before measuring",
    )

    def run(self, inp: AnalysisInput, progress=None, **params) -> AnalysisResult:
        p = self.params(**params)
        self.check(inp)
        n = len(inp)
        report(progress, 0.0, "reading images")
        side = int(p["quality_max_side"])
        # statistics measured while another pixel analyzer had the image decoded
        stats = dict(inp.shared.pixel_stats.get(side, {}))
        todo = [i for i in range(n) if i not in stats]
        more, errors = pixels.map_items(
            lambda rgb: pixel_stats(rgb, side), todo, inp.filepaths,
            inp.boxes, progress=progress, span=(0.0, 0.95), msg="measuring image quality")
        stats.update(more)
        ok = np.array(sorted(stats), dtype=np.int64)
        blur = np.full(n, np.nan)
        dark = np.full(n, np.nan)
        bright = np.full(n, np.nan)
        summary = dict(params=p, n=n, errors=len(errors))
        if len(ok):
            lo, hi, sp, ss = stat_arrays(stats, ok)
            rel, brel = float(p["quality_relative"]), float(p["blur_relative"])
            depth = 255.0 - lo
            edges = np.isfinite(sp)
            med_px = float(np.median(sp[edges])) if edges.any() else 1.0
            med_sz = float(np.median(ss[edges])) if edges.any() else 1.0
            thr = dict(
                # dark: brightest content dim; bright: darkest content close to white
                dark_level=min(float(p["dark_max_level"]), rel * float(np.median(hi))),
                bright_depth=min(float(p["bright_max_depth"]), rel * float(np.median(depth))),
                # blur: sharpest edges wide in pixels and relative to the image size
                blur_steep_px=min(1.0 / float(p["blur_max_edge_px"]), brel * med_px),
                blur_steep_size=min(float(p["blur_min_edges_per_side"]), brel * med_sz))
            blur[ok], dark[ok], bright[ok] = confidences(lo, hi, sp, ss, thr, p)
            summary.update(thresholds=thr,
                           medians=dict(hi=float(np.median(hi)), depth=float(np.median(depth)),
                                        steep_px=med_px, steep_size=med_sz),
                           counts={k: int(np.nansum(v >= 0.5)) for k, v in
                                   (("blur", blur), ("dark", dark), ("bright", bright))})
        report(progress, 1.0, "quality done")

        def col(a):
            return [None if not np.isfinite(x) else float(x) for x in a]

        return AnalysisResult(fields=dict(vc_blur=col(blur), vc_dark=col(dark), vc_bright=col(bright)),
                              summary=jsonable(summary), errors=errors)

    def update(self, ctx: IncrementalInput, p: dict) -> None:
        """The new items' pixel statistics against the earlier run's dataset thresholds
        (statistics the duplicate check measured while it had an image decoded are reused)."""
        inp, new = ctx.inp, ctx.new
        side = int(p["quality_max_side"])
        stats = dict(inp.shared.pixel_stats.get(side, {}))
        todo = [int(i) for i in new if int(i) not in stats]
        more, errs = pixels.map_items(lambda rgb: pixel_stats(rgb, side), todo,
                                      inp.filepaths, inp.boxes)
        stats.update(more)
        ctx.errors.update(errs)
        ok = np.array([int(i) for i in new if int(i) in stats], np.int64)
        thr = (ctx.details.get(self.name) or {}).get("thresholds")
        if len(ok) and thr:
            lo, hi, sp, ss = stat_arrays(stats, ok)
            for f, vals in zip(self.fields, confidences(lo, hi, sp, ss, thr, p)):
                ctx.put(f, ok, [float(x) for x in vals])
        for f in self.fields:
            col = ctx.values.setdefault(f, {})
            for r in new:
                col.setdefault(int(r), None)
