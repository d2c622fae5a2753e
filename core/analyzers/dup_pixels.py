"""The duplicate check on pixels: each image reduced to grey thumbnails of its centre crops
(stage 1, compared by normalised correlation and fine-detail correlation at the best
alignment) and the colour comparison of aligned survivors (stage 2). See
:mod:`.duplicates` for how the analyzer uses them."""
from __future__ import annotations

import numpy as np

from . import pixels

BASE = 128     # grey base thumbnail the crops are cut from (exact fractional crops)
THUMB = 32     # stage-1 comparison size
FINE = 64      # stage-2 comparison size


def _unit(x):
    x = x - x.mean(axis=-1, keepdims=True)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-6)


_MATS: dict = {}


def _area_matrix(src: int, dst: int, lo: float, hi: float) -> np.ndarray:
    """(dst, src) matrix averaging the source interval [lo, hi) into ``dst`` equal bins
    (exact fractional overlaps, like INTER_AREA)."""
    edges = lo + (hi - lo) * np.arange(dst + 1) / dst
    a, b = edges[:-1, None], edges[1:, None]
    x0 = np.arange(src)[None, :]
    overlap = np.clip(np.minimum(b, x0 + 1) - np.maximum(a, x0), 0, None)
    return (overlap / (b - a)).astype(np.float32)


def crop_matrices(crops) -> np.ndarray:
    """(n_crops, THUMB, BASE): centre crop by ``m`` per side, then area-resample to THUMB."""
    key = tuple(round(float(m), 6) for m in crops)
    if key not in _MATS:
        _MATS[key] = np.stack([_area_matrix(BASE, THUMB, BASE * m, BASE * (1 - m)) for m in key])
    return _MATS[key]


def _laplacian(t):
    """4-neighbour Laplacian of a stack (n, h, w), reflect-101 borders (as cv2.Laplacian)."""
    p = np.pad(t, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4 * t


def signature(rgb, crops):
    """Stage-1 signature of one image: its centre crops' grey thumbnails, normalised, float16
    (n_crops, T*T), and the keep-rule statistics. (The Laplacian thumbnails the detail check
    compares are computed from these, for the few pairs that reach it.)"""
    import cv2

    g = pixels.to_gray(rgb)
    base = cv2.resize(g, (BASE, BASE), interpolation=cv2.INTER_AREA).astype(np.float32)
    R = crop_matrices(crops)
    T = (R @ base) @ R.transpose(0, 2, 1)                  # (n_crops, THUMB, THUMB)
    return _unit(T.reshape(len(T), -1)).astype(np.float16), keep_stats(rgb)


def detail(g):
    """Normalised Laplacian (fine detail) thumbnails of normalised grey thumbnails (p, T*T).
    The Laplacian is linear and zero on constants, so this equals the Laplacian of the raw
    thumbnail, normalised."""
    t = np.asarray(g, np.float32).reshape(-1, THUMB, THUMB)
    return _unit(_laplacian(t).reshape(len(t), -1))


def keep_stats(rgb):
    """Resolution and sharpness (Laplacian SD / SD) for choosing the item to keep."""
    import cv2

    gf = pixels.to_gray(rgb).astype(np.float32)
    return dict(width=int(rgb.shape[1]), height=int(rgb.shape[0]),
                sharpness=float(cv2.Laplacian(gf, cv2.CV_32F).std() / (gf.std() + 1e-6)))


def _aligned(rgb, m):
    import cv2

    h, w = rgb.shape[:2]
    cy, cx = int(round(h * m)), int(round(w * m))
    crop = rgb[cy:h - cy, cx:w - cx] if (h - 2 * cy >= 2 and w - 2 * cx >= 2) else rgb
    return cv2.resize(crop, (FINE, FINE), interpolation=cv2.INTER_AREA).astype(np.float32)


def fine_check(rgb_a, rgb_b, m_a, m_b, step):
    """Stage-2 measures at the best refined alignment (crop on one side only)."""
    import cv2

    cands = []
    if m_a > 0 or m_b == 0:
        cands += [(max(0.0, m_a + d * step), 0.0) for d in (-0.5, -0.25, 0.0, 0.25, 0.5)]
    if m_b > 0:
        cands += [(0.0, max(0.0, m_b + d * step)) for d in (-0.5, -0.25, 0.0, 0.25, 0.5)]
    best = None
    for ma, mb in dict.fromkeys(cands):
        a, b = _aligned(rgb_a, ma), _aligned(rgb_b, mb)
        la, lb = a.mean(axis=2), b.mean(axis=2)
        gain = float((a * b).sum() / max((a * a).sum(), 1e-6))
        res = np.abs(b - gain * a).max(axis=2) / max(la.std(), lb.std(), 1.0)
        r99 = float(np.percentile(res, 99))
        if best is None or r99 < best[0]:
            best = (r99, la, lb)
    r99, la, lb = best
    sa = cv2.Laplacian(la, cv2.CV_32F).std() / (la.std() + 1e-6)
    sb = cv2.Laplacian(lb, cv2.CV_32F).std() / (lb.std() + 1e-6)

    def ratio(x, y):
        return float(min(x, y) / max(x, y, 1e-6))

    return dict(residual=r99, brightness=ratio(la.mean(), lb.mean()),
                contrast=ratio(la.std(), lb.std()), sharpness=ratio(sa, sb))


#: an image whose crops were approximated (every other crop: neighbouring crops differ by a
#: fraction of a pixel) is decoded when one reaches these against a partner (stage 1 needs
#: dup_min_corr / dup_min_detail, 0.95 by default). Measured on both benchmark sets (5,000
#: images each, every candidate pair both ways): every crop alignment that passes stage 1
#: reaches >= 0.91 / >= 0.71 approximated; 6-7 % of the others reach 0.85 / 0.6.
PRE_CORR = 0.85
PRE_DETAIL = 0.6


def approximate_crops(g0, crops):
    """Stage-1 crops approximated from stored full thumbnails ``g0`` (n, T*T), by
    area-resampling each thumbnail's centre crops (the crops proper resample the 128-pixel
    base) → (n, len(crops), T*T) float32, normalised. A crop of 0 is the thumbnail itself."""
    g0 = np.asarray(g0, np.float32).reshape(-1, THUMB, THUMB)
    key = ("approx",) + tuple(round(float(m), 6) for m in crops)
    if key not in _MATS:
        _MATS[key] = np.stack([_area_matrix(THUMB, THUMB, THUMB * m, THUMB * (1 - m))
                               for m in crops])
    R = _MATS[key]                                        # (c, T, T)
    n, c = len(g0), len(crops)
    # one GEMM for the rows of every crop, (c*T, T) @ (T, n*T), then one per crop for columns
    left = (R.reshape(c * THUMB, THUMB) @ g0.transpose(1, 0, 2).reshape(THUMB, n * THUMB))
    left = left.reshape(c, THUMB, n, THUMB).transpose(0, 2, 1, 3)         # (c, n, T, T)
    out = np.empty((n, c, THUMB * THUMB), np.float32)
    for k in range(c):
        out[:, k] = (left[k].reshape(n * THUMB, THUMB) @ R[k].T).reshape(n, -1)
    out -= out.mean(axis=2, keepdims=True)
    out /= np.sqrt(np.einsum("ncd,ncd->nc", out, out))[:, :, None] + 1e-6
    return out


def best_alignment(G0, GC, cpos, pa, pb):
    """For each pair (rows ``pa``/``pb``): the best stage-1 correlation of one image's crops
    against the other's full thumbnail (both directions), its crop index, and whether the crop
    is on b's side. ``G0`` (M, T*T): every image's full thumbnail; ``GC`` (M', crops, T*T): the
    crops of the images whose ``cpos`` >= 0 (the others take part uncropped only)."""
    G0f = np.asarray(G0, np.float32)
    best_c = np.full(len(pa), -np.inf, np.float32)
    best_m = np.zeros(len(pa), np.int64)
    crop_b = np.zeros(len(pa), bool)                     # True: the crop is on b's side

    def take(grp, v, m, side):
        better = v > best_c[grp]
        best_c[grp[better]] = v[better]
        best_m[grp[better]] = m[better]
        crop_b[grp[better]] = side == 1

    for side, (me, other) in enumerate(((pa, pb), (pb, pa))):
        has = cpos[me] >= 0
        flat = np.flatnonzero(~has)                      # uncropped only: one dot product
        if len(flat):
            take(flat, np.einsum("pd,pd->p", G0f[me[flat]], G0f[other[flat]]),
                 np.zeros(len(flat), np.int64), side)
        # per image: its crops against its partners' full thumbnails (one small matmul each)
        o = np.flatnonzero(has)
        o = o[np.argsort(me[o], kind="stable")]
        bounds = np.flatnonzero(np.diff(me[o])) + 1
        for grp in np.split(o, bounds):
            if not len(grp):
                continue
            c = GC[cpos[me[grp[0]]]].astype(np.float32) @ G0f[other[grp]].T  # (crops, partners)
            m = c.argmax(axis=0)
            take(grp, c[m, np.arange(len(grp))], m, side)
    return best_c, best_m, crop_b


def crop_thumbs(G0, GC, cpos, rows, m):
    """Thumbnails of crop ``m[j]`` of image ``rows[j]`` (crop 0: the full thumbnail)."""
    out = G0[rows].copy()
    k = np.flatnonzero(m > 0)
    out[k] = GC[cpos[rows[k]], m[k]]
    return out


def near_passes(G0, pa, pb, approx, crops, min_corr, min_detail, block=1024):
    """Rows flagged ``approx`` (only their full thumbnail is known, rows of ``G0``) whose
    approximated crops, against some partner's full thumbnail, reach ``min_corr`` with the
    detail correlation ``min_detail`` at that crop."""
    hit = set()
    G0 = np.asarray(G0, np.float32)
    pre = list(dict.fromkeys(crops[2::2] + crops[-1:])) if len(crops) > 2 else crops[1:]
    for me, other in ((pa, pb), (pb, pa)):
        sel = np.flatnonzero(approx[me])
        for b0 in range(0, len(sel), block):
            s_ = sel[b0:b0 + block]
            A = approximate_crops(G0[me[s_]], pre)                       # (p, c', D)
            C = np.einsum("pcd,pd->pc", A, G0[other[s_]])
            m = C.argmax(axis=1)
            close = np.flatnonzero(C[np.arange(len(s_)), m] >= min_corr)
            if not len(close):
                continue
            d = np.einsum("pd,pd->p", detail(A[close, m[close]]), detail(G0[other[s_[close]]]))
            hit.update(int(x) for x in me[s_[close[d >= min_detail]]])
    return sorted(hit)
