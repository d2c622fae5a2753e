"""Exact and near duplicates: candidates from the kNN graph and from the pixels, verified on
pixels.

1. **Exact copies**: equal ``content_hashes`` (no pixels needed).
2. **Candidates**: pairs among each item's ``dup_k`` nearest neighbours with cosine >=
   ``dup_min_sim`` (embeddings are robust to resize / re-encode / small crops, but also put
   distinct items of one class close together, so they only propose). With
   ``dup_pixel_candidates`` every image is read, and each also proposes its ``dup_pixel_k``
   most correlated low-pass thumbnails (16x16, correlation >= ``dup_pixel_min_corr``): some
   models move a picture far in embedding space under sensor noise a person does not notice
   (EfficientNet-Lite0 on Fashion-MNIST: cosine 0.5-0.7 for copies with noise sigma 4-9/255).
3. **Pixel check, stage 1** (vectorised over pairs): each image is reduced once to grey 32x32
   thumbnails of centre crops 0 %, 1 %, ... ``dup_max_crop`` per side. For a pair, one image's
   crops are compared with the other's full thumbnail (both directions) by normalised correlation
   (brightness/contrast invariant) and the best alignment is kept; it passes if the correlation
   >= ``dup_min_corr`` and the correlation of the Laplacians (fine detail, which distinct items of
   a class do not share) >= ``dup_min_detail``.
4. **Pixel check, stage 2** (survivors only): the two images are re-read, aligned at the refined
   crop and compared in colour at 64x64 (on luminance when either has no colour: a grayscale
   copy). The residual is what is left after a tone map fitted per colour channel (gain and
   offset: brightness, contrast, tint and channel gains are such maps; a recoloured part of
   a picture is not, as the rest keeps its colours). Its 99th percentile must be <=
   ``dup_max_residual`` (x the luminance SD), and so must its 95th percentile over the drawn
   part of the pictures (the *foreground*: pixels away from each image's median), so that a
   small drawing on a plain canvas (a glyph: plus and divide, minus and equals) is not judged
   by the canvas - this rejects colour variants and small local differences; brightness and
   contrast ratios must be >= ``dup_min_brightness_ratio`` / ``dup_min_contrast_ratio`` and
   the sharpness ratio >= ``dup_min_sharpness_ratio`` - so strongly darkened, washed-out or
   blurred derivatives (measured on the planted defects: ratios 0.02-0.14) are quality
   issues, not duplicates.
   Tolerated (bench/RESULTS.md, section edits, kind by kind): re-encoding, resize, centred
   crop <= ``dup_max_crop``, borders, aspect changes, brightness, contrast, gamma, tint and
   saturation, grayscale, mild blur and sharpening, sensor noise. Not yet: captions written
   over the picture's content itself (step 6 takes those on its background), and the few Tux
   Paint letters that are one plain bar (upper-case I and lower-case l differ by a few pixels
   of size).
5. **Registration** (:mod:`.dup_register`): pairs that fail the centred check and are among
   the ``dup_register_k`` closest candidates (by embedding) of one of their items get an
   affine motion estimated by ECC on the thumbnails (shifts, turns up to 15 degrees,
   off-centre crops, aspect changes). Where the motion is an everyday one, the pair is judged
   again where both images overlap: grey correlation >= ``dup_min_corr`` and fine-detail
   correlation >= ``dup_register_min_detail``, each counted against what the motion's own
   resampling leaves of the image (thin line art loses correlation to a 32-pixel warp
   alone), then stage 2 with the motion refined at
   128 pixels and the warp done at 256 (so interpolation does not count as a difference),
   residual <= ``dup_register_max_residual`` (stricter than ``dup_max_residual``: six
   parameters were fitted to the pair), over the whole overlap and over the drawn part of
   the picture (the foreground), so one small drawing on a plain canvas is not mapped onto
   another.
6. **Overlays** (:mod:`.dup_overlay`): pairs still not verified, among the ``dup_overlay_k``
   closest candidates of one of their items, are compared on the box holding the drawn part
   of both; a pair whose only difference is a compact change that lies on one image's plain
   background (a caption, a logo, a watermark), small next to that image's own drawing, while
   the rest of the picture passes stage 2, is one picture with an overlay. A letter changed on
   a dreidel or a flag added to a note is not: the change covers drawing, or is as large as
   the symbol.
7. Verified pairs are regrouped as **stars** (:func:`~.dup_pixels.star_groups`): the member
   with the most verified partners is a group's centre and every member must pass both stages
   against the centre itself, so a chain of plain pictures each within tolerance of the next
   (thousands of Fashion-MNIST trousers) is not one group. Then these pairs and the hash groups
   are merged (union-find). In each group the item to keep is the
   one with the largest resolution, then the sharpest, then the oldest (``created``), then the
   first; every other member gets ``vc_duplicate=True``. ``vc_dup_group`` is the kept item's id.

Without ``filepaths`` the pixel check is replaced by a stricter embedding threshold
(``dup_vector_only_sim``); so is it for every candidate pair with an item whose file cannot be
read (its error says so).
"""
from __future__ import annotations

import numpy as np

from . import pixels
from .dup_pixels import candidate_pairs, keep_stats, pair_cosines
from .dup_verify import pixel_verify
from .base import (AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IncrementalInput,
                   IssueSpec, jsonable, report)

def candidate_rule(inp, p):
    """(pixels verify the candidates?, cosine a candidate needs). Without pixels only the
    strict vector threshold counts: filtered before pairing (at a million items the loose
    candidates are tens of millions of pairs)."""
    use_pixels = bool(p["dup_use_pixels"]) and inp.filepaths is not None
    return use_pixels, float(p["dup_min_sim"] if use_pixels else
                             max(p["dup_min_sim"], p["dup_vector_only_sim"]))


#: the keep rule of :func:`keep_rule`, in words (shown to the user)
KEEP_RULE = "largest resolution, then sharpest, then oldest"


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
        dup_min_brightness_ratio=0.5,
        dup_min_contrast_ratio=0.5,
        dup_min_sharpness_ratio=0.5,
        dup_vector_only_sim=0.98,
        dup_use_pixels=True,
        dup_pixel_candidates=True,
        dup_pixel_k=5,
        dup_pixel_min_corr=0.9,
        dup_register_k=1,
        dup_register_min_detail=0.8,
        dup_register_max_residual=0.2,
        dup_overlay_k=1,
    )
    param_help = dict(
        dup_k="nearest neighbours proposed as candidates",
        dup_min_sim="embedding cosine a candidate needs",
        dup_max_crop="largest crop per side tolerated (fraction)",
        dup_crop_step="crop search step (fraction per side)",
        dup_min_corr="grey 32x32 correlation at the best alignment",
        dup_min_detail="Laplacian (fine detail) correlation at the best alignment",
        dup_max_residual="colour residual after a per-channel tone map / luminance SD at "
                         "64x64: its 99th percentile, and its 95th over the drawn part",
        dup_min_brightness_ratio="darker/brighter mean luminance ratio",
        dup_min_contrast_ratio="lower/higher luminance SD ratio",
        dup_min_sharpness_ratio="blurrier/sharper Laplacian ratio",
        dup_vector_only_sim="cosine that counts as a duplicate when no pixels are available",
        dup_use_pixels="verify candidates on pixels when filepaths are given",
        dup_pixel_candidates="also propose pairs from the pixels (every image is read)",
        dup_pixel_k="most similar low-pass thumbnails proposed per image",
        dup_pixel_min_corr="low-pass thumbnail correlation a pixel candidate needs",
        dup_register_k="closest candidates per item registered (shift, turn, off-centre "
                       "crop) when the centred check fails; 0: none",
        dup_register_min_detail="fine-detail correlation a registered pair needs",
        dup_register_max_residual="colour residual a registered pair may keep (stricter: the "
                                  "motion was fitted to the pair)",
        dup_overlay_k="closest candidates per item checked for an overlay drawn onto the "
                      "background (caption, logo, watermark) when the other checks fail; 0: "
                      "none",
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
        everyone = use_pixels and bool(p["dup_pixel_candidates"]) and n >= 2
        if not use_pixels:
            verified = [tuple(x) for x in pairs]
        elif len(pairs) or everyone:
            verified, stats, errors = pixel_verify(
                inp, pairs, p, progress, extra=np.arange(n) if everyone else None)
            verified += self._vector_fallback(inp, pairs, errors, min_sim, p, summary)
            got = inp.shared.dup_decoded or {}
            summary.update(pixel_candidates=int(got.get("pixel_pairs", 0)),
                           registered=int(got.get("registered", 0)),
                           register_checked=int(got.get("register_checked", 0)),
                           overlay_checked=int(got.get("overlay_checked", 0)),
                           overlays=int(got.get("overlays", 0)))
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
        inp.shared.dup_roots = roots          # the clusters keep each group together
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
        keep = [(int(a), int(b)) for a, b in fb[pair_cosines(inp.vectors, fb) >= strict]]
        for i in errors:
            errors[i] = f"{errors[i]} (duplicates judged from the vectors alone)"
        summary.update(vector_only_items=int(bad.sum()), vector_only_pairs=len(keep))
        return keep

    def update(self, ctx: IncrementalInput, p: dict) -> None:
        """Candidates among each new item's nearest neighbours and exact copies by content
        hash, verified on pixels like a full run (earlier partners through the thumbnails the
        earlier runs kept); a group a new item joins is regrouped, which may change earlier
        members' values (counted in the summary)."""
        inp, new, ind, sim = ctx.inp, ctx.new, ctx.ind, ctx.sim
        read, read_groups, signatures, summary = (ctx.read, ctx.read_groups, ctx.signatures,
                                                  ctx.summary)
        put = ctx.put
        n = len(inp)
        is_new = np.zeros(n, bool)
        is_new[new] = True
        kk = int(p["dup_k"])
        use_pixels, min_sim = candidate_rule(inp, p)
        pairs = candidate_pairs(new, ind[:, :kk], sim[:, :kk], min_sim)
        hash_pairs = []
        if inp.content_hashes is not None:
            first = {}
            for i, h in enumerate(inp.content_hashes):
                if h and not is_new[i]:
                    first.setdefault(h, i)
            for i in new:
                h = inp.content_hashes[i]
                if h:
                    if h in first and first[h] != i:
                        hash_pairs.append((first[h], int(i)))
                    else:
                        first.setdefault(h, int(i))
        stats, errors = {}, {}

        def stored(rows):
            """Signatures the earlier runs kept for these earlier rows (same file content)."""
            rows = [int(r) for r in rows]
            if signatures is None or not use_pixels or not rows:
                return {}
            hashes = inp.content_hashes
            got = signatures.read([inp.ids[r] for r in rows],
                                  [hashes[r] for r in rows] if hashes is not None else None)
            return {r: got[inp.ids[r]] for r in rows if inp.ids[r] in got}

        everyone = use_pixels and bool(p["dup_pixel_candidates"]) and len(new) > 0
        if not use_pixels:
            verified = [tuple(x) for x in pairs]
        elif len(pairs) or everyone:
            # earlier partners come from the stored signatures; the images decoded here are
            # (nearly all) new ones, whose quality is measured from the same decode; pixel
            # candidates compare every new image with every earlier image kept
            partners = sorted({int(x) for x in pairs.ravel() if not is_new[x]})
            pool = stored(np.flatnonzero(~is_new)) if everyone else stored(partners)
            cached = {r: pool[r] for r in partners if r in pool}
            verified, stats, errors = pixel_verify(
                inp, pairs, p, None, cached=cached,
                extra=np.asarray(new, np.int64) if everyone else None,
                pool=pool if everyone else None)
            verified += self._vector_fallback(inp, pairs, errors, min_sim, p, {})
            summary["duplicates_images"] = dict(inp.shared.dup_decoded or dict(
                decoded=len(np.unique(pairs)), from_store=0, decoded_after_all=0))
        else:
            verified = []
        verified = [(int(x), int(y)) for x, y in list(verified) + hash_pairs]
        # earlier items involved, and the members of their stored groups
        involved = sorted({x for e in verified for x in e if not is_new[x]})
        gid_of = dict(zip(involved, read(np.array(involved, np.int64), ["vc_dup_group"])
                          ["vc_dup_group"])) if involved else {}
        gids = sorted({g for g in gid_of.values() if g})
        group_rows = read_groups(gids) if gids else []
        rows = sorted({x for e in verified for x in e} | {r_ for r_, _ in group_rows} | set(
            int(i) for i in new))
        pos = {r_: j for j, r_ in enumerate(rows)}
        uf = UnionFind(len(rows))
        for x, y in verified:
            uf.union(pos[x], pos[y])
        first_of = {}
        for r_, g in group_rows:
            if g in first_of:
                uf.union(pos[first_of[g]], pos[r_])
            else:
                first_of[g] = r_
        comp = {}
        for r_ in rows:
            comp.setdefault(uf.find(pos[r_]), []).append(r_)
        missing = [r_ for mem in comp.values() if len(mem) > 1 for r_ in mem if r_ not in stats]
        stats.update({r_: v[1] for r_, v in stored([r_ for r_ in missing if not is_new[r_]]).items()})
        missing = [r_ for r_ in missing if r_ not in stats]
        if missing and use_pixels:
            more, _ = pixels.map_items(keep_stats, missing, inp.filepaths, inp.boxes)
            stats.update(more)
        keep_key = keep_rule(inp, stats)
        stored_gid = {r_: g for r_, g in group_rows}
        changed = 0
        for mem in comp.values():
            if len(mem) == 1:
                if is_new[mem[0]]:
                    put("vc_dup_group", mem, [None])
                    put("vc_duplicate", mem, [False])
                continue
            keep = min(mem, key=keep_key)
            gid = str(inp.ids[keep])
            # new members, and earlier members whose group changed (the group id is the kept
            # item's id, so an unchanged id means unchanged values)
            write = [m for m in mem if is_new[m] or stored_gid.get(m, gid_of.get(m)) != gid]
            changed += sum(not is_new[m] for m in write)
            put("vc_dup_group", write, [gid] * len(write))
            put("vc_duplicate", write, [m != keep for m in write])
        ctx.errors.update(errors)
        summary["duplicates_regrouped_earlier_items"] = int(changed)
