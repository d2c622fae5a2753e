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


def candidate_pairs(rows, ind, sim, min_sim):
    """Unique unordered pairs (row, neighbour) with cosine >= ``min_sim``; ``ind``/``sim``
    are the neighbours of ``rows``."""
    r, c = np.nonzero((sim >= min_sim) & (ind >= 0))
    if not len(r):
        return np.zeros((0, 2), np.int64)
    a, b = np.asarray(rows)[r], ind[r, c]
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1), axis=0)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def pair_cosines(vectors, pairs, block: int = 65536) -> np.ndarray:
    """Cosine of the unit vectors of each row pair ``pairs`` (P, 2), read in blocks."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    out = np.empty(len(pairs), np.float32)
    for b0 in range(0, len(pairs), block):
        blk = pairs[b0:b0 + block]
        out[b0:b0 + block] = np.einsum("pd,pd->p", np.asarray(vectors[blk[:, 0]], np.float32),
                                       np.asarray(vectors[blk[:, 1]], np.float32))
    return out


def lowpass(G, factor: int = 2) -> np.ndarray:
    """Low-pass thumbnails ``(M, (T/factor)^2)``, normalised, of full thumbnails ``G`` (M, T*T):
    means of ``factor`` x ``factor`` blocks, which sensor noise, re-encoding, overlays of thin
    lines and small colour changes barely move."""
    t = np.asarray(G, np.float32).reshape(len(G), THUMB // factor, factor, THUMB // factor,
                                          factor).mean(axis=(2, 4))
    return _unit(t.reshape(len(G), -1))


def pixel_pairs(G, k: int, min_corr: float, queries=None) -> np.ndarray:
    """Candidate pairs proposed by the pixels themselves (positions into ``G``, the full
    thumbnails): each query's ``k`` most correlated low-pass thumbnails (:func:`lowpass`) with
    correlation >= ``min_corr``. ``queries`` (positions) default to every row (the exact graph,
    or the IVF graph above :data:`~visual_curation.core.knn.EXACT_MAX_ROWS` rows). Embeddings
    of some models move a lot under noise a person does not notice; the pixels do not."""
    from ..knn import knn_graph, knn_query

    L = lowpass(G)
    if len(L) < 2:
        return np.zeros((0, 2), np.int64)
    if queries is None:
        rows = np.arange(len(L))
        ind, sim, _ = knn_graph(L, k)
    else:
        rows = np.asarray(queries, np.int64)
        ind, sim = knn_query(L[rows], L, min(k, len(L) - 1), exclude=rows)
    return candidate_pairs(rows, ind, sim, min_corr)


def pixel_candidates(sigs, pool, queries, k: int, min_corr: float) -> list:
    """Pairs ``(row, row)`` proposed by the pixels (:func:`pixel_pairs`): ``queries`` (rows
    read in this run) against every thumbnail known: ``sigs`` (row -> (signature, stats), the
    signature a full thumbnail or a stack of crops whose first is the full thumbnail) and
    ``pool`` (row -> (full thumbnail, stats): earlier images kept by earlier runs)."""
    if not queries:
        return []
    rows = sorted(set(sigs) | set(pool))
    at = {r: j for j, r in enumerate(rows)}

    def thumb(r):
        if r in sigs:
            g = sigs[r][0]
            return g[0] if g.ndim == 2 else g
        return pool[r][0]

    G = np.stack([np.asarray(thumb(r), np.float16) for r in rows])
    q = None if len(queries) == len(rows) else [at[r] for r in queries]
    return [(rows[a], rows[b]) for a, b in pixel_pairs(G, k, min_corr, q)]


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


#: an image whose mean chroma (max - min channel, 0-255) is below this has no colour: a pair
#: with such an image is compared on luminance only (a grayscale copy of a colour picture is
#: the same picture; two colourings of one drawing are not, and both have colour)
GRAY_CHROMA = 1.0
#: luminance weights (ITU-R BT.601, as :func:`.pixels.to_gray` and PIL's "L")
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def chroma(rgb) -> float:
    """Mean over pixels of (max - min channel): 0 for a grayscale image."""
    a = np.asarray(rgb, np.float32)
    return float((a.max(axis=2) - a.min(axis=2)).mean())


#: a pair whose sharpness ratio is below the first number is also compared with both
#: images softened by a Gaussian of this SD (FINE pixels), and keeps the better residuals
FILTERED = (0.8, 0.7)


def fine_check(rgb_a, rgb_b, m_a, m_b, step):
    """Stage-2 measures at the best refined alignment (crop on one side only): the 99th
    percentile of the residual after a tone map fitted per colour channel (:func:`residual`),
    or on luminance when either image has no colour (:data:`GRAY_CHROMA`), in units of the
    luminance SD; and the same over the drawn part (:func:`foreground_residual`). Where one
    image is much sharper than the other (:data:`FILTERED`), the residuals are the better
    of the pair as it is and of both softened alike (a sharpening or blurring filter)."""
    seen = {}

    def aligned(side, m):            # each crop of each image resized once per pair
        if (side, m) not in seen:
            x = _aligned(rgb_b if side else rgb_a, m)
            seen[side, m] = x, x @ LUMA
        return seen[side, m]

    gray = min(chroma(aligned(0, 0.0)[0]), chroma(aligned(1, 0.0)[0])) < GRAY_CHROMA

    cands = []
    if m_a > 0 or m_b == 0:
        cands += [(max(0.0, m_a + d * step), 0.0) for d in (-0.5, -0.25, 0.0, 0.25, 0.5)]
    if m_b > 0:
        cands += [(0.0, max(0.0, m_b + d * step)) for d in (-0.5, -0.25, 0.0, 0.25, 0.5)]
    best = None
    for ma, mb in dict.fromkeys(cands):
        (a, la), (b, lb) = aligned(0, ma), aligned(1, mb)
        r99 = residual(a, b, la, lb, gray)
        if best is None or r99 < best[0]:
            best = (r99, a, b, la, lb)
    r99, a, b, la, lb = best
    out = measures(r99, la, lb)
    out["foreground"] = foreground_residual(a, b, la, lb, gray)
    return softened(out, a, b, gray)


def softened(out, a, b, gray, mask=None) -> dict:
    """``out`` (stage-2 measures of the aligned pair ``a``, ``b``) with the better residuals
    of the pair softened alike (:data:`FILTERED`) where the sharpness ratio says one of the two
    was sharpened or softened: shapes stay, what the filter changed at the edges evens out.
    The sharpness ratio itself stays the images' own."""
    if out["sharpness"] >= FILTERED[0]:
        return out
    import cv2

    a, b = (cv2.GaussianBlur(x, (0, 0), FILTERED[1]) for x in (a, b))
    la, lb = a @ LUMA, b @ LUMA
    soft = dict(residual=residual(a, b, la, lb, gray, mask=mask),
                foreground=foreground_residual(a, b, la, lb, gray, mask=mask))
    if max(soft.values()) < max(out["residual"], out["foreground"]):
        out.update(soft)
    return out


def residual(a, b, la, lb, gray, mask=None, q: float = 99) -> float:
    """``q``-th percentile of the residual of ``b`` after a tone map of ``a`` fitted per
    colour channel (least squares, gain >= 0 and offset: brightness, contrast, tint and
    channel gains are such maps; a recoloured part of a picture is not, as the rest keeps its
    colours), on colour images and their luminance ``la``/``lb`` (luminance only when
    ``gray``), in units of the larger luminance SD; over ``mask`` (bool, e.g. the pixels both
    images show) when given."""
    from .quality import percentile

    if gray:
        a, b = la[:, :, None], lb[:, :, None]
    if mask is not None:
        a, b, la, lb = a[mask], b[mask], la[mask], lb[mask]
    A = a.reshape(-1, a.shape[-1]).astype(np.float64)
    B = b.reshape(-1, b.shape[-1]).astype(np.float64)
    A = A - A.mean(axis=0)
    mb = B.mean(axis=0)
    gain = np.maximum((A * (B - mb)).sum(axis=0) / np.maximum((A * A).sum(axis=0), 1e-6), 0.0)
    res = np.abs(B - (A * gain + mb)).max(axis=-1) / max(la.std(), lb.std(), 1.0)
    return percentile(res, q)


def foreground(la, lb, mask=None):
    """The drawn part of two aligned luminance images: pixels (of ``mask``, when given) where
    either differs from its own median by more than half its SD."""
    m = np.ones(la.shape, bool) if mask is None else mask
    return m & ((np.abs(la - np.median(la[m])) > 0.5 * la[m].std())
                | (np.abs(lb - np.median(lb[m])) > 0.5 * lb[m].std()))


def foreground_residual(a, b, la, lb, gray, mask=None) -> float:
    """95th percentile of the residual (:func:`residual`) over the :func:`foreground`: a small
    drawing on a plain canvas (a glyph, a clip-art stamp) barely moves the frame-wide
    percentile; 0 where fewer than 16 pixels are drawn."""
    fg = foreground(la, lb, mask)
    return residual(a, b, la, lb, gray, mask=fg, q=95) if fg.sum() >= 16 else 0.0


def measures(r99, la, lb, mask=None) -> dict:
    """Stage-2 measures of two aligned luminance images: the residual ``r99`` and the
    brightness, contrast and sharpness ratios (over ``mask`` when given)."""
    import cv2

    sa, sb = cv2.Laplacian(la, cv2.CV_32F), cv2.Laplacian(lb, cv2.CV_32F)
    if mask is not None:
        la, lb, sa, sb = la[mask], lb[mask], sa[mask], sb[mask]
    sa, sb = sa.std() / (la.std() + 1e-6), sb.std() / (lb.std() + 1e-6)

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


def near_passes(G0, pa, pb, approx, crops, min_corr, min_detail, block=2048, chunk=4096):
    """Rows flagged ``approx`` (only their full thumbnail is known, rows of ``G0``) whose
    approximated crops, against some partner's full thumbnail, reach ``min_corr`` with the
    detail correlation ``min_detail`` at that crop. Each image's crops are approximated once
    (in blocks of ``block`` images), then compared with all its partners."""
    G0 = np.asarray(G0, np.float32)
    pre = list(dict.fromkeys(crops[2::2] + crops[-1:])) if len(crops) > 2 else crops[1:]
    if not pre:
        return []
    me = np.concatenate([pa, pb])
    other = np.concatenate([pb, pa])
    sel = np.flatnonzero(approx[me])
    sel = sel[np.argsort(me[sel], kind="stable")]
    me, other = me[sel], other[sel]
    imgs = np.unique(me)
    hit = set()
    for b0 in range(0, len(imgs), block):
        blk = imgs[b0:b0 + block]
        A = approximate_crops(G0[blk], pre)                              # (b, c', D)
        lo, hi = np.searchsorted(me, [blk[0], blk[-1] + 1])
        for c0 in range(lo, hi, chunk):
            m_, o_ = me[c0:min(c0 + chunk, hi)], other[c0:min(c0 + chunk, hi)]
            loc = np.searchsorted(blk, m_)
            C = np.einsum("pcd,pd->pc", A[loc], G0[o_])
            m = C.argmax(axis=1)
            close = np.flatnonzero(C[np.arange(len(m_)), m] >= min_corr)
            if not len(close):
                continue
            d = np.einsum("pd,pd->p", detail(A[loc[close], m[close]]), detail(G0[o_[close]]))
            hit.update(int(x) for x in m_[close[d >= min_detail]])
    return sorted(hit)


def star_groups(edges, check):
    """Verified pairs regrouped so that every group is a **star**: one centre and the members
    that pass the check against the centre itself. Union of verified pairs alone chains:
    among thousands of plain pictures of one kind (Fashion-MNIST's trousers) each is within
    the tolerance of the next while the ends of the chain are different pictures.

    In each connected group of three or more, the member with the most verified partners is
    the centre; its verified partners join it, then their partners are checked against the
    centre directly (``check(pairs) -> the pairs that pass``, both pixel stages; a copy need not
    have been proposed with its original), outwards while members keep passing - a long chain
    costs checks near each centre only. The rest are regrouped the same way. Returns the pairs
    (centre, member).

    Example::

        star_groups([(0, 1), (1, 2)], check=lambda pairs: [])   # → [(1, 0), (1, 2)]
    """
    if not edges:
        return []
    adj: dict = {}
    for a, b in edges:
        adj.setdefault(int(a), set()).add(int(b))
        adj.setdefault(int(b), set()).add(int(a))
    out, seen = [], set()
    for start in sorted(adj):
        if start in seen:
            continue
        comp, todo = {start}, [start]
        while todo:                                   # the connected group of ``start``
            for nb in adj[todo.pop()] - comp:
                comp.add(nb)
                todo.append(nb)
        seen |= comp
        left = set(comp)
        while len(left) >= 2:
            deg = {v: len(adj[v] & left) for v in left}
            centre = max(sorted(left), key=lambda v: deg[v])
            if deg[centre] == 0:
                break
            members = adj[centre] & left
            frontier, tried = set(members), set()
            while frontier:        # outwards from the centre while members keep passing
                nxt = set().union(*(adj[f] for f in frontier)) & left
                nxt -= members | tried | {centre}
                tried |= nxt
                passed = check([(min(centre, m), max(centre, m)) for m in sorted(nxt)]) \
                    if nxt else []
                frontier = {a if b == centre else b for a, b in passed} - members
                members |= frontier
            out += [(centre, m) for m in sorted(members)]
            left -= {centre, *members}
    return out
