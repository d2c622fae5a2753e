"""Exact and near duplicates: candidates from the kNN graph, verified on pixels.

1. **Exact copies**: equal ``content_hashes`` (no pixels needed).
2. **Candidates**: pairs among each item's ``dup_k`` nearest neighbours with cosine >=
   ``dup_min_sim`` (embeddings are robust to resize / re-encode / small crops, but also put
   distinct items of one class close together, so they only propose).
3. **Pixel check, stage 1** (vectorised over pairs): each image is reduced once to grey 32x32
   thumbnails of centre crops 0 %, 1 %, ... ``dup_max_crop`` per side. For a pair, one image's
   crops are compared with the other's full thumbnail (both directions) by normalised correlation
   (brightness/contrast invariant) and the best alignment is kept; it passes if the correlation
   >= ``dup_min_corr`` and the correlation of the Laplacians (fine detail, which distinct items of
   a class do not share) >= ``dup_min_detail``.
4. **Pixel check, stage 2** (survivors only): the two images are re-read, aligned at the refined
   crop and compared in colour at 64x64: the 99th percentile of the colour residual after one
   common gain must be <= ``dup_max_residual`` (x the luminance SD) - this rejects colour variants
   and small local differences; brightness and contrast ratios must be >= ``dup_min_brightness_ratio``
   / ``dup_min_contrast_ratio`` and the sharpness ratio >= ``dup_min_sharpness_ratio`` - so
   strongly darkened, washed-out or blurred derivatives are quality issues, not duplicates.
   Tolerated: resize, crop <= ``dup_max_crop``, JPEG/WebP re-encoding, +-13 % brightness, format.
5. Verified pairs and hash groups are merged (union-find). In each group the item to keep is the
   one with the largest resolution, then the sharpest, then the oldest (``created``), then the
   first; every other member gets ``vc_duplicate=True``. ``vc_dup_group`` is the kept item's id.

Without ``filepaths`` the pixel check is replaced by a stricter embedding threshold
(``dup_vector_only_sim``); so is it for every candidate pair with an item whose file cannot be
read (its error says so).
"""
from __future__ import annotations

import numpy as np

from . import pixels
from .base import AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IssueSpec, jsonable, report

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


def _best_alignment(G0, GC, cpos, pa, pb):
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


def _crop_thumbs(G0, GC, cpos, rows, m):
    """Thumbnails of crop ``m[j]`` of image ``rows[j]`` (crop 0: the full thumbnail)."""
    out = G0[rows].copy()
    k = np.flatnonzero(m > 0)
    out[k] = GC[cpos[rows[k]], m[k]]
    return out


def _near_passes(G0, pa, pb, approx, crops, min_corr, min_detail, block=1024):
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


def candidate_rule(inp, p):
    """(pixels verify the candidates?, cosine a candidate needs). Without pixels only the
    strict vector threshold counts: filtered before pairing (at a million items the loose
    candidates are tens of millions of pairs)."""
    use_pixels = bool(p["dup_use_pixels"]) and inp.filepaths is not None
    return use_pixels, float(p["dup_min_sim"] if use_pixels else
                             max(p["dup_min_sim"], p["dup_vector_only_sim"]))


def candidate_pairs(rows, ind, sim, min_sim):
    """Unique unordered pairs (row, neighbour) with cosine >= ``min_sim``; ``ind``/``sim``
    are the neighbours of ``rows``."""
    r, c = np.nonzero((sim >= min_sim) & (ind >= 0))
    if not len(r):
        return np.zeros((0, 2), np.int64)
    a, b = np.asarray(rows)[r], ind[r, c]
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1), axis=0)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def keep_rule(inp, stats):
    """Sort key of the item to keep in a group: largest resolution, then sharpest (``stats``
    from :func:`keep_stats`), then oldest, then first."""
    sizes, created = inp.sizes, inp.created

    def key(i):
        st = stats.get(i)
        if st is not None:
            res = st["width"] * st["height"]
        elif sizes is not None and sizes[i]:
            res = int(sizes[i][0]) * int(sizes[i][1])
        else:
            res = 0
        sharp = st["sharpness"] if st is not None else 0.0
        t = created[i] if created is not None and created[i] is not None else np.inf
        return (-res, -sharp, t, i)

    return key


class UnionFind:
    def __init__(self, n):
        self.p = np.arange(n)

    def find(self, a):
        p = self.p
        root = a
        while p[root] != root:
            root = p[root]
        while p[a] != root:
            p[a], a = root, p[a]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.p[max(ra, rb)] = min(ra, rb)


class DuplicatesAnalyzer(Analyzer):
    name = "duplicates"
    field_specs = (
        FieldSpec("vc_dup_group", "str", "Visual Curation: id shared by exact and near copies"),
        FieldSpec("vc_duplicate", "bool", "Visual Curation: a copy to drop (every group member "
                                          "but the one to keep)"))
    issues = (IssueSpec("duplicate", "vc_duplicate", flag=True),)
    defaults = dict(
        dup_k=10,
        dup_min_sim=0.7,
        dup_max_crop=0.10,
        dup_crop_step=0.01,
        dup_min_corr=0.95,
        dup_min_detail=0.95,
        dup_max_residual=0.6,
        dup_min_brightness_ratio=0.75,
        dup_min_contrast_ratio=0.75,
        dup_min_sharpness_ratio=0.6,
        dup_vector_only_sim=0.98,
        dup_use_pixels=True,
    )
    param_help = dict(
        dup_k="nearest neighbours proposed as candidates",
        dup_min_sim="embedding cosine a candidate needs",
        dup_max_crop="largest crop per side tolerated (fraction)",
        dup_crop_step="crop search step (fraction per side)",
        dup_min_corr="grey 32x32 correlation at the best alignment",
        dup_min_detail="Laplacian (fine detail) correlation at the best alignment",
        dup_max_residual="99th-percentile colour residual / luminance SD at 64x64",
        dup_min_brightness_ratio="darker/brighter mean luminance ratio",
        dup_min_contrast_ratio="lower/higher luminance SD ratio",
        dup_min_sharpness_ratio="blurrier/sharper Laplacian ratio",
        dup_vector_only_sim="cosine that counts as a duplicate when no pixels are available",
        dup_use_pixels="verify candidates on pixels when filepaths are given",
    )

    def run(self, inp: AnalysisInput, progress=None, **params) -> AnalysisResult:
        p = self.params(**params)
        n = len(inp)
        uf = UnionFind(n)
        errors = {}
        summary = dict(params=p, n=n)
        # 1. exact copies by content hash
        n_hash_pairs = 0
        if inp.content_hashes is not None:
            first = {}
            for i, h in enumerate(inp.content_hashes):
                if h:
                    if h in first:
                        uf.union(first[h], i)
                        n_hash_pairs += 1
                    else:
                        first[h] = i
        # 2. candidates from the kNN graph
        report(progress, 0.0, "nearest neighbours")
        pairs = np.zeros((0, 2), np.int64)
        use_pixels, min_sim = candidate_rule(inp, p)
        if n >= 2:
            ind, sim = inp.knn(int(p["dup_k"]))
            pairs = candidate_pairs(np.arange(n), ind, sim, min_sim)
        summary["candidates"] = int(len(pairs))
        stats = {}
        verified = []
        if not use_pixels:
            verified = [tuple(x) for x in pairs]
        elif len(pairs):
            verified, stats, errors = self._pixel_verify(inp, pairs, p, progress)
            verified += self._vector_fallback(inp, pairs, errors, min_sim, p, summary)
        for a, b in verified:
            uf.union(int(a), int(b))
        summary.update(verified_pairs=len(verified), hash_pairs=n_hash_pairs,
                       pixels=use_pixels, errors=len(errors))
        # 3. groups and the item to keep
        roots = np.array([uf.find(i) for i in range(n)])
        _, inv, counts = np.unique(roots, return_inverse=True, return_counts=True)
        in_group = counts[inv] > 1
        group = [None] * n
        dup = [False] * n
        keep_key = keep_rule(inp, stats)

        members = {}
        for i in np.flatnonzero(in_group):
            members.setdefault(int(roots[i]), []).append(int(i))
        # resolution/sharpness of members not read yet (exact copies found by hash only)
        missing = [i for mem in members.values() for i in mem if i not in stats]
        if missing and use_pixels:
            more, _ = pixels.map_items(keep_stats, missing, inp.filepaths, inp.boxes)
            stats.update(more)
        for mem in members.values():
            keep = min(mem, key=keep_key)
            gid = str(inp.ids[keep])
            for i in mem:
                group[i] = gid
                dup[i] = i != keep
        summary.update(groups=len(members), duplicates=int(sum(dup)),
                       in_groups=int(in_group.sum()))
        report(progress, 1.0, "duplicates done")
        return AnalysisResult(fields=dict(vc_dup_group=group, vc_duplicate=dup),
                              summary=jsonable(summary), errors=errors)

    @staticmethod
    def _vector_fallback(inp, pairs, errors, min_sim, p, summary):
        """Candidate pairs with an item whose pixels could not be read (moved or remote media,
        vectors brought without images) are judged by the strict vector rule instead; their
        error says so."""
        if not errors:
            return []
        bad = np.zeros(len(inp), bool)
        bad[list(errors)] = True
        fb = pairs[bad[pairs[:, 0]] | bad[pairs[:, 1]]]
        strict = max(float(min_sim), float(p["dup_vector_only_sim"]))
        keep = []
        for b0 in range(0, len(fb), 65536):
            blk = fb[b0:b0 + 65536]
            cos = np.einsum("pd,pd->p", np.asarray(inp.vectors[blk[:, 0]], np.float32),
                            np.asarray(inp.vectors[blk[:, 1]], np.float32))
            keep += [(int(a), int(b)) for a, b in blk[cos >= strict]]
        for i in errors:
            errors[i] = f"{errors[i]} (duplicates judged from the vectors alone)"
        summary.update(vector_only_items=int(bad.sum()), vector_only_pairs=len(keep))
        return keep

    @staticmethod
    def _keep_signatures(inp, sigs, exact):
        """Exact full thumbnails of the images decoded here, for the run to store (see
        :class:`~visual_curation.core.store.PixelSignatures`)."""
        inp.shared.dup_signatures = {i: (sigs[i][0][0], sigs[i][1])
                                            for i in sorted(exact) if i in sigs}

    def _pixel_verify(self, inp, pairs, p, progress, cached=None):
        """Stages 1 and 2 on the candidate ``pairs``.

        ``cached`` (incremental runs): ``{item: (full thumbnail, keep stats)}`` kept by the
        earlier run for items not to decode. Their crops are approximated from the thumbnail;
        an item is decoded after all when, for some pair, one of its approximate crops comes
        within ``PRE_CORR`` / ``PRE_DETAIL`` of passing stage 1 (margins the approximation
        never came near on the benchmark sets). The others enter stage 1 uncropped, with
        their exact full thumbnail."""
        step = float(p["dup_crop_step"])
        crops = [i * step for i in range(int(round(float(p["dup_max_crop"]) / step)) + 1)]
        need = np.unique(pairs.ravel())
        cached = {int(i): cached[int(i)] for i in need if int(i) in (cached or {})}
        # when quality runs next on the same input, measure it from this decode as well
        from .quality import pixel_stats

        side = int(inp.settings("quality")["quality_max_side"])
        share = "quality" in inp.planned

        def fn(rgb):
            return signature(rgb, crops), (pixel_stats(rgb, side) if share else None)

        read = [int(i) for i in need if int(i) not in cached]
        both, errors = pixels.map_items(fn, read, inp.filepaths, inp.boxes, progress=progress,
                                         span=(0.02, 0.8), msg="image signatures")
        sigs = {i: v[0] for i, v in both.items()}
        if share:
            inp.shared.pixel_stats[side] = {i: v[1] for i, v in both.items()}
        del both
        for i, (g0, st) in cached.items():   # only the full thumbnail is known
            sigs[i] = (np.asarray(g0, np.float16), st)
        ok = np.array([a in sigs and b in sigs for a, b in pairs], bool)
        pairs = pairs[ok]
        exact = set(read)
        if not len(pairs):
            self._keep_signatures(inp, sigs, exact)
            return [], {i: s[1] for i, s in sigs.items()}, errors
        order = sorted(sigs)
        pos = np.full(len(inp), -1, np.int64)
        pos[order] = np.arange(len(order))
        G0 = np.stack([sigs[i][0][0] if sigs[i][0].ndim == 2 else sigs[i][0] for i in order])
        with_crops = [i for i in order if sigs[i][0].ndim == 2]
        cpos = np.full(len(order), -1, np.int64)
        cpos[pos[with_crops]] = np.arange(len(with_crops))
        GC = np.stack([sigs[i][0] for i in with_crops]) if with_crops else \
            np.zeros((0, len(crops), THUMB * THUMB), np.float16)   # (M', crops, T*T) float16
        stats = {i: s[1] for i, s in sigs.items()}
        pa, pb = pos[pairs[:, 0]], pos[pairs[:, 1]]
        if cached:
            approx = cpos < 0
            redo = _near_passes(G0, pa, pb, approx, crops, PRE_CORR, PRE_DETAIL)
            more, errs = pixels.map_items(lambda rgb: signature(rgb, crops),
                                           [order[j] for j in redo], inp.filepaths, inp.boxes)
            errors.update(errs)
            if more:
                got = sorted(more)
                cpos[pos[got]] = len(GC) + np.arange(len(got))
                GC = np.concatenate([GC, np.stack([more[i][0] for i in got])])
                for i in got:
                    G0[pos[i]] = more[i][0][0]
                    stats[i] = more[i][1]
                    sigs[i] = more[i]
                    exact.add(i)
            inp.shared.dup_decoded = dict(decoded=len(read), from_store=len(cached),
                                                 decoded_after_all=len(more))
        self._keep_signatures(inp, sigs, exact)
        del sigs
        best_c, best_m, crop_b = _best_alignment(G0, GC, cpos, pa, pb)
        cand = np.flatnonzero(best_c >= float(p["dup_min_corr"]))
        survivors = []
        if len(cand):
            cropped = np.where(crop_b[cand], pb[cand], pa[cand])
            full = np.where(crop_b[cand], pa[cand], pb[cand])
            mm = best_m[cand]
            det = np.concatenate([
                np.einsum("pd,pd->p", detail(_crop_thumbs(G0, GC, cpos, cropped[b:b + 8192],
                                                          mm[b:b + 8192])),
                          detail(G0[full[b:b + 8192]]))
                for b in range(0, len(cand), 8192)])
            for j in cand[det >= float(p["dup_min_detail"])]:
                mi = crops[int(best_m[j])]
                survivors.append((int(pairs[j, 0]), int(pairs[j, 1]),
                                  mi if not crop_b[j] else 0.0, mi if crop_b[j] else 0.0))
        report(progress, 0.85, "verifying candidates")
        verified = []
        cache = {}

        def rgb(i):
            if i not in cache:
                if len(cache) > 256:
                    cache.clear()
                cache[i] = pixels.read_rgb(inp.filepaths[i], inp.boxes[i] if inp.boxes else None)
            return cache[i]

        for t, (a, b, ma, mb) in enumerate(survivors):
            try:
                f = fine_check(rgb(a), rgb(b), ma, mb, step)
            except Exception as e:  # noqa: BLE001 - file changed since stage 1
                errors.setdefault(a, str(e))
                continue
            if (f["residual"] <= float(p["dup_max_residual"])
                    and f["brightness"] >= float(p["dup_min_brightness_ratio"])
                    and f["contrast"] >= float(p["dup_min_contrast_ratio"])
                    and f["sharpness"] >= float(p["dup_min_sharpness_ratio"])):
                verified.append((a, b))
            if t % 50 == 0:
                report(progress, 0.85 + 0.15 * t / max(len(survivors), 1), "verifying candidates")
        return verified, stats, errors
