"""Registration for the duplicate check: copies moved, turned or cropped off centre.

The crop search of stage 1 (:mod:`.dup_pixels`) aligns centred crops only. A copy shifted by a
few pixels, turned by a few degrees or cropped by a different margin on each side fails it,
although a person calls it the same picture. For such pairs an affine motion is estimated on
the 32x32 thumbnails by OpenCV's ECC (enhanced correlation coefficient) maximisation, kept only
when it is a plausible everyday edit (:data:`LIMITS`), and the pair is judged again where both
images overlap: grey and fine-detail correlation on the thumbnails, then the stage-2 colour
residual (:func:`fine_check_warped`).

Registration is the costly part of the check (ECC is about half a millisecond a pair on the
thumbnails, a few milliseconds at stage 2), so it is tried on each image's ``k`` closest
candidates by embedding only (:func:`closest_pairs`): embeddings are robust to small motions,
so a moved copy is its original's nearest candidate.
"""
from __future__ import annotations

import numpy as np

from . import pixels
from .dup_pixels import (FINE, GRAY_CHROMA, LUMA, THUMB, chroma, foreground_residual, measures,
                         residual, softened)

#: what a registration may do and still be an everyday edit: turn (degrees), scale (each
#: axis), aspect change (ratio of the axis scales), shear (|cos| of the angle between the
#: axes), shift (fraction of the side) and the share of one of the two frames that both
#: images show (:func:`shared_share`: a border or a zoom-out puts the whole original inside
#: part of the copy's frame)
LIMITS = dict(turn=15.0, scale=(0.7, 1.45), aspect=1.3, shear=0.1, shift=0.25, overlap=0.6)
#: sizes at which stage 2 refines the motion and warps (then averages down to FINE)
REFINE = 128
WARP = 256


def closest_pairs(pairs, cos, k: int) -> np.ndarray:
    """Bool mask of ``pairs`` (P, 2) that are among the ``k`` highest-``cos`` pairs of either
    of their two items.

    Example::

        closest_pairs(np.array([[0, 1], [0, 2]]), np.array([0.9, 0.8]), 1)   # → [True, True]
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    keep = np.zeros(len(pairs), bool)
    if not len(pairs) or k <= 0:
        return keep
    idx = np.arange(len(pairs))
    me = np.concatenate([pairs[:, 0], pairs[:, 1]])
    who = np.concatenate([idx, idx])
    c = np.concatenate([cos, cos])
    order = np.lexsort((-c, me))
    me, who = me[order], who[order]
    start = np.r_[0, np.flatnonzero(np.diff(me)) + 1]
    rank = np.arange(len(me)) - np.repeat(start, np.diff(np.r_[start, len(me)]))
    keep[who[rank < k]] = True
    return keep


def plausible(W, side: int) -> bool:
    """Whether the affine ``W`` (2x3, template to input coordinates of ``side``-pixel images)
    stays within :data:`LIMITS`."""
    M, t = W[:, :2].astype(np.float64), W[:, 2].astype(np.float64)
    sx, sy = np.linalg.norm(M[:, 0]), np.linalg.norm(M[:, 1])
    lo, hi = LIMITS["scale"]
    if not (lo <= sx <= hi and lo <= sy <= hi) or max(sx, sy) / min(sx, sy) > LIMITS["aspect"]:
        return False
    if abs(float(M[:, 0] @ M[:, 1])) / (sx * sy) > LIMITS["shear"]:
        return False
    if abs(np.degrees(np.arctan2(M[1, 0], M[0, 0]))) > LIMITS["turn"]:
        return False
    centre = (side - 1) / 2
    moved = M @ np.array([centre, centre]) + t - centre       # where the centre goes
    return float(np.abs(moved).max()) <= LIMITS["shift"] * side


#: share of the round trip's loss (the image moved by the motion and back: two resamplings)
#: that one resampling costs, which is what a real copy's thumbnail went through
RESAMPLING = 0.5


def _warp(img, W, side):
    import cv2

    return cv2.warpAffine(img, W, (side, side), flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def overlap(W, side: int):
    """Bool mask of the template's pixels whose warped position lies inside the input image
    (one pixel in from its edge, so interpolation and the Laplacian see real pixels)."""
    import cv2

    ones = np.ones((side, side), np.float32)
    m = cv2.warpAffine(ones, W, (side, side), flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.erode(m, np.ones((3, 3), np.uint8)) > 0.5


def shared_share(W, side: int, forward=None) -> float:
    """The larger of the two frames' shares that both images show under the motion ``W``:
    the template's pixels that land inside the input (``forward``, the :func:`overlap` mask,
    when already computed), or the input's pixels that come from inside the template (a copy
    with a border shows all of its original in part of its own frame, whichever of the two
    is the template)."""
    import cv2

    if forward is None:
        forward = overlap(W, side)
    return max(float(forward.mean()),
               float(overlap(cv2.invertAffineTransform(W), side).mean()))


def _ncc(x, y):
    x = x - x.mean()
    y = y - y.mean()
    return float((x * y).sum() / (np.sqrt((x * x).sum() * (y * y).sum()) + 1e-9))


def register(G0, pa, pb, iters: int = 10):
    """Affine registration of thumbnail pairs (rows ``pa``/``pb`` of ``G0``, (M, T*T)): for
    each pair the motion ``W`` (2x3, a's pixel to b's pixel at THUMB size) and the grey and
    fine-detail (Laplacian) correlations over the overlap, each plus what one resampling
    alone takes from it (:data:`RESAMPLING` x (``1 -`` the correlation of ``a`` with itself
    moved by ``W`` and back)): a copy is judged by what it lost beyond the warp, which on
    thin line art is most of what it lost. Pairs whose motion did not converge
    or is not an everyday edit (:func:`plausible`) get correlations of -1 and ``W`` None.
    OpenCV releases the GIL, so :data:`.pixels.WORKERS` threads share the pairs."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, int(iters), 1e-4)
    Ws = [None] * len(pa)
    corr, det = np.full(len(pa), -1.0), np.full(len(pa), -1.0)

    def one(j):
        A = np.asarray(G0[pa[j]], np.float32).reshape(THUMB, THUMB)
        B = np.asarray(G0[pb[j]], np.float32).reshape(THUMB, THUMB)
        # ECC climbs from a start: the shift phase correlation finds, when it finds one
        # (a shift of a few pixels is beyond ECC's reach on fine line art), else no motion
        (dx, dy), _ = cv2.phaseCorrelate(A, B)
        starts = [np.eye(2, 3, dtype=np.float32)]
        if abs(dx) + abs(dy) > 1:
            starts.insert(0, np.float32([[1, 0, dx], [0, 1, dy]]))
        for W in starts:
            try:
                _, W = cv2.findTransformECC(A, B, W, cv2.MOTION_AFFINE, crit, None, 3)
                break
            except cv2.error:        # no convergence (flat images, nothing in common)
                W = None
        if W is None:
            return
        m = overlap(W, THUMB)
        if not plausible(W, THUMB) or shared_share(W, THUMB, m) < LIMITS["overlap"]:
            return
        Bw = _warp(B, W, THUMB)
        # what the motion's resampling alone costs: ``A`` moved by ``W`` and back
        Aw = _warp(cv2.warpAffine(A, W, (THUMB, THUMB), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE), W, THUMB)
        lap = cv2.Laplacian(A, cv2.CV_32F)[m]
        corr[j] = _ncc(A[m], Bw[m]) + RESAMPLING * (1.0 - _ncc(A[m], Aw[m]))
        det[j] = (_ncc(lap, cv2.Laplacian(Bw, cv2.CV_32F)[m])
                  + RESAMPLING * (1.0 - _ncc(lap, cv2.Laplacian(Aw, cv2.CV_32F)[m])))
        Ws[j] = W

    def chunk(js):
        for j in js:
            one(j)

    parts = np.array_split(np.arange(len(pa)), pixels.WORKERS * 4)
    with ThreadPoolExecutor(pixels.WORKERS) as ex:
        list(ex.map(chunk, parts))
    return Ws, corr, det


def scaled(W, src: int, dst: int) -> np.ndarray:
    """The motion ``W`` found between ``src``-pixel images, for ``dst``-pixel images (pixel
    centres at half-integers of the frame)."""
    k = dst / src
    M, t = W[:, :2].astype(np.float64), W[:, 2].astype(np.float64)
    # x_src = (x_dst + 0.5) / k - 0.5  →  y_dst = M x_dst + k t + (k - 1)/2 (1 - M·1)
    t2 = k * t + (k - 1) / 2 * (1 - M.sum(axis=1))
    return np.hstack([M, t2[:, None]]).astype(np.float32)


def fine_check_warped(rgb_a, rgb_b, W) -> dict:
    """Stage-2 measures (see :func:`.dup_pixels.fine_check`) of a registered pair: the motion
    ``W`` (found at THUMB size) refined on the luminance at :data:`REFINE` pixels, ``b``
    warped into ``a``'s frame at :data:`WARP` pixels and both averaged down to 64x64,
    compared where both show, with the ``foreground`` residual
    (:func:`.dup_pixels.foreground_residual`): registration could otherwise map one small
    drawing on a plain canvas onto another."""
    import cv2

    def at(rgb, side):
        return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)

    # refine the motion at REFINE pixels; warp at WARP pixels and average down to FINE, so
    # the interpolation of thin lines does not count as a difference
    W2 = scaled(W, THUMB, REFINE)
    try:
        crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 1e-4)
        _, W2 = cv2.findTransformECC(at(rgb_a, REFINE) @ LUMA, at(rgb_b, REFINE) @ LUMA, W2,
                                     cv2.MOTION_AFFINE, crit, None, 1)
    except cv2.error:                # keep the thumbnail's motion
        pass
    Ww = scaled(W2, REFINE, WARP)
    a = at(rgb_a, FINE)
    bw = at(_warp(at(rgb_b, WARP), Ww, WARP), FINE)
    m = cv2.erode((at(overlap(Ww, WARP).astype(np.float32), FINE) > 0.999).astype(np.uint8),
                  np.ones((3, 3), np.uint8)) > 0
    if m.mean() < LIMITS["overlap"] / 2:     # the refined motion left too little in common
        return dict(residual=np.inf, brightness=0.0, contrast=0.0, sharpness=0.0,
                    foreground=np.inf)
    la, lb = a @ LUMA, bw @ LUMA
    gray = min(chroma(a), chroma(bw)) < GRAY_CHROMA
    out = measures(residual(a, bw, la, lb, gray, mask=m), la, lb, mask=m)
    out["foreground"] = foreground_residual(a, bw, la, lb, gray, mask=m)
    return softened(out, a, bw, gray, mask=m)
