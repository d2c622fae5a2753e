"""Stages 1 and 2 of the duplicate check on candidate pairs (see :mod:`.duplicates`): the
images are read once for their signatures, the candidates are compared at the best centred
crop, the ones that fail are registered (:mod:`.dup_register`) and checked for an overlay drawn
onto their background (:mod:`.dup_overlay`) where that may help, and the verified pairs are
regrouped as stars."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import pixels
from .base import report
from .dup_pixels import (PRE_CORR, PRE_DETAIL, THUMB, best_alignment, crop_thumbs, detail,
                         fine_check, near_passes, pair_cosines, pixel_candidates, signature,
                         star_groups)
from .dup_overlay import overlay_check, thumb_gate
from .dup_register import closest_pairs, fine_check_warped, register


def keep_signatures(inp, sigs, exact):
    """Exact full thumbnails of the images decoded here, for the run to store (see
    :class:`~visual_curation.core.store.PixelSignatures`)."""
    inp.shared.dup_signatures = {i: (np.array(sigs[i][0][0]), sigs[i][1])   # copies: the
                                for i in sorted(exact) if i in sigs}        # crops are freed


def local_order(pairs) -> np.ndarray:
    """An order of ``pairs`` (P, 2 item rows) in which pairs that share items come close
    together: the items ranked by reverse Cuthill-McKee on the graph the pairs form (which
    keeps linked items near in rank), the pairs sorted by the ranks of their items.

    >>> local_order(np.array([[0, 5], [1, 2], [5, 9]])).tolist()   # (0, 5) next to (5, 9)
    [1, 2, 0]
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if len(pairs) < 2:
        return np.arange(len(pairs))
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    items, inv = np.unique(pairs, return_inverse=True)
    inv = inv.reshape(-1, 2)
    n = len(items)
    g = coo_matrix((np.ones(len(pairs), np.int8), (inv[:, 0], inv[:, 1])), shape=(n, n)).tocsr()
    rank = np.empty(n, np.int64)
    rank[reverse_cuthill_mckee((g + g.T).tocsr(), symmetric_mode=True)] = np.arange(n)
    r = rank[inv]
    return np.lexsort((r.max(axis=1), r.min(axis=1)))


def pixel_verify(inp, pairs, p, progress, cached=None, extra=None, pool=None):
    """Stages 1 and 2 on the candidate ``pairs``.

    ``cached`` (incremental runs): ``{item: (full thumbnail, keep stats)}`` kept by the
    earlier run for items not to decode. Their crops are approximated from the thumbnail;
    an item is decoded after all when, for some pair, one of its approximate crops comes
    within ``PRE_CORR`` / ``PRE_DETAIL`` of passing stage 1 (margins the approximation
    never came near on the benchmark sets). The others enter stage 1 uncropped, with
    their exact full thumbnail.

    ``extra``: rows to read even outside ``pairs``, which also propose pairs from their
    pixels (:func:`~.dup_pixels.pixel_pairs`) among themselves and ``pool`` (incremental
    runs: ``{row: (full thumbnail, keep stats)}`` of every earlier image kept)."""
    step = float(p["dup_crop_step"])
    crops = [i * step for i in range(int(round(float(p["dup_max_crop"]) / step)) + 1)]
    need = np.unique(pairs.ravel())
    if extra is not None:
        need = np.union1d(need, np.asarray(extra, np.int64))
    cached = {int(i): cached[int(i)] for i in need if int(i) in (cached or {})}
    # when quality runs next on the same input, measure it from this decode as well
    from .quality import pixel_stats

    side = int(inp.settings("quality")["quality_max_side"])
    share = "quality" in inp.planned

    read = [int(i) for i in need if int(i) not in cached]
    # the crops' thumbnails are written by the readers into one shared array (a 70k-image
    # run's are 1.7 GB: pickled back and stacked, they cost more than computing them)
    slot = {i: j for j, i in enumerate(read)}
    crops_of = pixels.shared_array((len(read), len(crops), THUMB * THUMB), np.float16)

    def fn(i, rgb):
        sig, st = signature(rgb, crops)
        crops_of[slot[i]] = sig
        return st, (pixel_stats(rgb, side) if share else None)

    both, errors = pixels.map_items(fn, read, inp.filepaths, inp.boxes, progress=progress,
                                     span=(0.02, 0.8), msg="image signatures", indexed=True)
    sigs = {i: (crops_of[slot[i]], v[0]) for i, v in both.items()}
    if share:
        inp.shared.pixel_stats[side] = {i: v[1] for i, v in both.items()}
    del both
    for i, (g0, st) in cached.items():   # only the full thumbnail is known
        sigs[i] = (np.asarray(g0, np.float16), st)
    n_pix = 0
    if extra is not None:
        more = pixel_candidates(sigs, pool or {}, [int(i) for i in extra if int(i) in sigs],
                                int(p["dup_pixel_k"]), float(p["dup_pixel_min_corr"]))
        if more:
            for i in {x for e in more for x in e if x not in sigs}:   # from the pool
                sigs[i] = (np.asarray(pool[i][0], np.float16), pool[i][1])
                cached[i] = pool[i]
            n0 = len(pairs)
            pairs = np.unique(np.concatenate([pairs.reshape(-1, 2),
                                              np.array(more, np.int64)]), axis=0)
            n_pix = len(pairs) - n0
    inp.shared.dup_decoded = dict(decoded=len(read), from_store=len(cached),
                                  decoded_after_all=0, pixel_pairs=n_pix)
    have = np.zeros(len(inp), bool)
    have[list(sigs)] = True
    ok = have[pairs[:, 0]] & have[pairs[:, 1]]
    pairs = pairs[ok]
    exact = set(read)
    if not len(pairs):
        keep_signatures(inp, sigs, exact)
        return [], {i: s[1] for i, s in sigs.items()}, errors
    order = sorted(sigs)
    pos = np.full(len(inp), -1, np.int64)
    pos[order] = np.arange(len(order))
    G0 = np.stack([sigs[i][0][0] if sigs[i][0].ndim == 2 else sigs[i][0] for i in order])
    with_crops = [i for i in order if sigs[i][0].ndim == 2]
    cpos = np.full(len(order), -1, np.int64)
    cpos[pos[with_crops]] = np.arange(len(with_crops))
    # (M', crops, T*T) float16: the rows of the images decoded here (a copy only where some
    # could not be read)
    GC = crops_of if len(with_crops) == len(read) else crops_of[[slot[i] for i in with_crops]]
    stats = {i: s[1] for i, s in sigs.items()}
    if cached:
        pa, pb = pos[pairs[:, 0]], pos[pairs[:, 1]]
        approx = cpos < 0
        redo = near_passes(G0, pa, pb, approx, crops, PRE_CORR, PRE_DETAIL)
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
        inp.shared.dup_decoded["decoded_after_all"] = len(more)
    keep_signatures(inp, sigs, exact)
    del sigs
    rgb = pixels.ImageCache(inp.filepaths, inp.boxes)     # shared by the stage-2 threads

    def stages(pairs, report_to=None, closest=closest_pairs):
        """Stage 1 then stage 2 on row ``pairs`` → the verified ones; then registration of the
        rest chosen by ``closest(pairs, cos, k)`` (a mask; see
        :func:`.dup_register.closest_pairs`)."""
        pa, pb = pos[pairs[:, 0]], pos[pairs[:, 1]]
        best_c, best_m, crop_b = best_alignment(G0, GC, cpos, pa, pb)
        cand = np.flatnonzero(best_c >= float(p["dup_min_corr"]))
        survivors = []
        if len(cand):
            cropped = np.where(crop_b[cand], pb[cand], pa[cand])
            full = np.where(crop_b[cand], pa[cand], pb[cand])
            mm = best_m[cand]
            det = np.concatenate([
                np.einsum("pd,pd->p", detail(crop_thumbs(G0, GC, cpos, cropped[b:b + 8192],
                                                          mm[b:b + 8192])),
                          detail(G0[full[b:b + 8192]]))
                for b in range(0, len(cand), 8192)])
            for j in cand[det >= float(p["dup_min_detail"])]:
                mi = crops[int(best_m[j])]
                survivors.append((int(pairs[j, 0]), int(pairs[j, 1]),
                                  (mi if not crop_b[j] else 0.0, mi if crop_b[j] else 0.0)))
        report(report_to, 0.85, "verifying candidates")
        verified = stage2(survivors, lambda a, b, m: fine_check(a, b, *m, step), report_to)
        if int(p["dup_register_k"]) > 0 and len(pairs):
            verified += registered(pairs, set(verified), closest)
        if int(p["dup_overlay_k"]) > 0 and len(pairs):
            verified += overlaid(pairs, set(verified), closest)
        return verified

    def passes(f, max_residual):
        return (f["residual"] <= max_residual
                and f.get("foreground", 0.0) <= max_residual
                and f["brightness"] >= float(p["dup_min_brightness_ratio"])
                and f["contrast"] >= float(p["dup_min_contrast_ratio"])
                and f["sharpness"] >= float(p["dup_min_sharpness_ratio"]))

    def stage2(survivors, check, report_to=None, max_residual=float(p["dup_max_residual"])):
        """``check(rgb_a, rgb_b, how)`` on each survivor ``(a, b, how)`` → the pairs passing
        (:func:`passes`: residuals up to ``max_residual``)."""
        def one(s):
            try:
                return check(rgb(s[0]), rgb(s[1]), s[2]), None
            except Exception as e:  # noqa: BLE001 - file changed since stage 1
                return None, str(e)

        # checked in an order where pairs sharing images come together (each image decoded
        # about once), answered in the survivors' order
        order = local_order(np.array([s[:2] for s in survivors], np.int64).reshape(-1, 2))
        got = [None] * len(survivors)
        # OpenCV, numpy and the decoders release the GIL: the threads share the pairs
        with ThreadPoolExecutor(pixels.WORKERS) as ex:
            for t, (j, res) in enumerate(zip(order, ex.map(one, [survivors[j] for j in order]))):
                got[j] = res
                if t % 50 == 0:
                    report(report_to, 0.85 + 0.15 * t / max(len(survivors), 1),
                           "verifying candidates")
        verified = []
        for (a, b, _), (f, err) in zip(survivors, got):
            if err is not None:
                errors.setdefault(a, err)
            elif passes(f, max_residual):
                verified.append((a, b))
        return verified

    memo = []

    def cosines(pairs):
        """Embedding cosines of the rows of ``pairs``, computed once per array (registration
        and the overlay step pick among the same candidates)."""
        if not memo or memo[0][0] is not pairs:
            memo[:] = [(pairs, pair_cosines(inp.vectors, pairs))]
        return memo[0][1]

    def undecided(pairs, done, pick, k):
        """Rows of ``pairs`` not in ``done`` among the ``k`` closest (``pick``)."""
        rest = np.arange(len(pairs))
        if done:
            key = pairs[:, 0] * len(inp) + pairs[:, 1]
            rest = rest[~np.isin(key, [min(a, b) * len(inp) + max(a, b) for a, b in done])]
        if len(rest):
            rest = rest[pick(pairs[rest], cosines(pairs)[rest], k)]
        return rest

    def registered(pairs, done, pick):
        """Pairs not verified at a centred crop, registered (:func:`.dup_register.register`)
        and checked again where both images overlap."""
        rest = undecided(pairs, done, pick, int(p["dup_register_k"]))
        if not len(rest):
            return []
        W, corr, det = register(G0, pos[pairs[rest, 0]], pos[pairs[rest, 1]])
        ok = np.flatnonzero((corr >= float(p["dup_min_corr"]))
                            & (det >= float(p["dup_register_min_detail"])))
        got = inp.shared.dup_decoded
        got["registered"] = got.get("registered", 0) + len(rest)
        got["register_checked"] = got.get("register_checked", 0) + len(ok)
        strict = min(float(p["dup_max_residual"]), float(p["dup_register_max_residual"]))
        out = stage2([(int(pairs[rest[j], 0]), int(pairs[rest[j], 1]), W[j]) for j in ok],
                     lambda a, b, w: fine_check_warped(a, b, w), max_residual=strict)
        moved.update(x for e in out for x in e)
        return out

    def overlaid(pairs, done, pick):
        """Pairs still not verified, checked for an overlay drawn onto one of them
        (:func:`.dup_overlay.overlay_check`)."""
        rest = undecided(pairs, done, pick, int(p["dup_overlay_k"]))
        mr = float(p["dup_max_residual"])
        if len(rest):
            rest = rest[thumb_gate(G0, pos[pairs[rest, 0]], pos[pairs[rest, 1]], mr)]
        if not len(rest):
            return []
        got = inp.shared.dup_decoded
        got["overlay_checked"] = got.get("overlay_checked", 0) + len(rest)
        out = stage2([(int(pairs[j, 0]), int(pairs[j, 1]), None) for j in rest],
                     lambda a, b, _: overlay_check(a, b, mr))
        moved.update(x for e in out for x in e)
        got["overlays"] = got.get("overlays", 0) + len(out)
        return out

    moved = set()       # items verified with a partner only after registration or overlay
    verified = stages(pairs, progress)

    def with_moved(pr, cos, k):       # star checks: registration where a moved copy is involved
        return np.isin(pr, sorted(moved)).any(axis=1)

    # a chain of verified pairs is not one picture: groups are stars around a centre
    verified = star_groups(verified, lambda pr: stages(np.asarray(pr, np.int64),
                                                       closest=with_moved))
    inp.shared.dup_decoded["stage2_reads"] = rgb.reads
    return verified, stats, errors

