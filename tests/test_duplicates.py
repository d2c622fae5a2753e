"""The duplicate check against everyday edits: copies made by the project's own parameterised edit
generator (tools/planted_sets.py, kinds and strengths drawn at random from a seed) on real
Fashion-MNIST and Tux Paint images, with EfficientNet-Lite0 vectors; and the pixel candidates
that find copies the vectors do not propose."""
from __future__ import annotations

import collections
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_bench

from visual_curation.core.analyzers import REGISTRY
from visual_curation.core.analyzers.base import AnalysisInput

#: the edits the check is built to accept everywhere (captions and logos: on the picture's
#: background only, tested below; bench/RESULTS.md, section edits, reports every kind)
HANDLED = ("exact", "jpeg", "webp", "resize", "crop", "bright", "contrast", "gamma", "colour",
           "grayscale", "blur", "sharpen", "noise", "aspect", "border", "rotate", "shift",
           "offset_crop")


def _run(folder, **params):
    from bench import metrics
    from bench.effnet import embed_files

    truth = metrics.load_truth(folder)
    names = sorted(truth)
    paths = [str(Path(folder) / "data" / n) for n in names]
    inp = AnalysisInput(ids=names, vectors=embed_files(paths), filepaths=paths,
                        content_hashes=[hashlib.sha1(Path(p).read_bytes()).hexdigest()
                                        for p in paths])
    res = REGISTRY["duplicates"].run(inp, **params)
    g = res.fields["vc_dup_group"]
    row = {n: i for i, n in enumerate(names)}
    found = collections.defaultdict(list)
    for n, t in truth.items():
        if t.get("dup_of"):
            a, b = row[t["dup_of"]], row[n]
            found[t["dup_kind"]].append(g[a] is not None and g[a] == g[b])
    return metrics.dup_prf(g, names, truth), found, res


@pytest.mark.slow
@pytest.mark.parametrize("source,n,seed", [("fmnist", 3000, 23), ("stamps", 5000, 23)])
def test_copies_after_everyday_edits_are_found_and_distinct_pictures_kept_apart(
        tmp_root, source, n, seed):
    folder = make_bench(tmp_root / f"edits-{source}-{seed}", source, n=n, seed=seed,
                        dups=0.08, dup_edits=HANDLED, strength=(0.0, 1.0))
    m, found, _ = _run(folder)
    total = [x for v in found.values() for x in v]
    per_kind = {k: f"{sum(v)}/{len(v)}" for k, v in found.items()}
    assert m["dup_precision"] >= 0.95, m
    if source == "fmnist":   # ~16 copies per kind
        assert np.mean(total) >= 0.9, per_kind
        for kind, v in found.items():
            assert np.mean(v) >= 0.75, (kind, per_kind)
    else:   # ~3 per kind; clip art's sharp colour edges make the colour residual strict
        assert np.mean(total) >= 0.8, per_kind


def test_moved_turned_and_off_centre_copies_are_found_by_registration(tmp_root):
    """Copies shifted, rotated or cropped off centre fail the centred crop search; the
    registration step finds them, and without it (``dup_register_k=0``) they are lost."""
    folder = make_bench(tmp_root / "edits-geometric-31", "fmnist", n=700, seed=31, dups=0.05,
                        dup_edits=("rotate", "shift", "offset_crop"), strength=(0.0, 1.0))
    m, found, res = _run(folder)
    per_kind = {k: f"{sum(v)}/{len(v)}" for k, v in found.items()}
    assert m["dup_precision"] >= 0.95, m
    for kind, v in found.items():
        assert np.mean(v) >= 0.8, (kind, per_kind)
    assert res.summary["registered"] > 0
    _, off, _ = _run(folder, dup_register_k=0)
    assert np.mean([x for v in off.values() for x in v]) <= 0.3, off


@pytest.mark.slow
@pytest.mark.parametrize("source,n,dups", [("fmnist", 1000, 0.08), ("stamps", 5000, 0.15)])
def test_captions_and_logos_drawn_onto_the_background_are_found(tmp_root, source, n, dups):
    """Copies with a caption or a semi-transparent logo drawn on them (random words, colours,
    sizes and corners): most are found, at least a tenth of them only by the overlay check
    (``dup_overlay_k=0`` turns it off); distinct pictures stay apart."""
    folder = make_bench(tmp_root / f"edits-overlay-{source}-43", source, n=n, seed=43,
                        dups=dups, dup_edits=("text", "watermark"), strength=(0.0, 1.0))
    m, found, res = _run(folder)
    on = np.mean([x for v in found.values() for x in v])
    per_kind = {k: f"{sum(v)}/{len(v)}" for k, v in found.items()}
    assert m["dup_precision"] >= 0.95, m
    assert on >= 0.6, per_kind
    assert res.summary["overlays"] > 0
    _, off, _ = _run(folder, dup_overlay_k=0)
    assert np.mean([x for v in off.values() for x in v]) <= on - 0.1, (per_kind, off)


def test_symbols_that_differ_by_an_added_stroke_stay_apart(tmp_path):
    """Tux Paint symbols that are another one plus a stroke (a quaver is a crotchet with a
    flag, a T an I with a bar) or with one mark changed are not overlays: the change covers
    the drawing or is as large as the symbol. No two distinct glyphs are grouped, while
    copies with a caption on the canvas still are."""
    from tools.planted_sets import edit_text, stamps

    src = stamps()
    rows = [i for i, c in enumerate(src.labels)
            if c in ("symbols/music", "filled/uppercase", "math/operators")]
    assert len(rows) >= 30
    rng = np.random.default_rng(11)
    n = len(rows)
    paths = [str(tmp_path / f"glyph{j}.png") for j in range(n)]
    for j, i in enumerate(rows):
        src.image(i).save(paths[j])
    copies = rng.choice(n, 12, replace=False)
    for j in copies:
        paths.append(str(tmp_path / f"copy{j}.png"))
        edit_text(src.image(rows[j]), rng, 0.0)[0].save(paths[-1])
    from bench.effnet import embed_files

    inp = AnalysisInput(ids=[Path(p).stem for p in paths], vectors=embed_files(paths),
                        filepaths=paths)
    res = REGISTRY["duplicates"].run(inp)
    g = res.fields["vc_dup_group"]
    originals = [g[j] for j in range(n) if g[j] is not None]
    assert len(originals) == len(set(originals)), [
        (paths[j], g[j]) for j in range(n) if g[j] is not None]
    assert res.summary["overlay_checked"] > 0


def _noisy_copy(src, dst, sigma, seed=0):
    a = np.asarray(Image.open(src).convert("RGB"), np.float32)
    a += np.random.default_rng(seed).normal(0, sigma, a.shape)
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(dst)


def _pictures(folder, n=8, size=96, seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = Image.fromarray((rng.random((12, 12, 3)) * 255).astype(np.uint8))
        p = folder / f"pic{i}.png"
        small.resize((size, size), Image.BICUBIC).save(p)
        paths.append(str(p))
    return paths


def test_pixel_candidates_find_copies_the_vectors_do_not_propose(tmp_path):
    """A noisy copy whose vector is far from its original's (as some models do under noise):
    the pixels propose the pair, the check verifies it; without pixel candidates it is lost."""
    paths = _pictures(tmp_path)
    _noisy_copy(paths[2], tmp_path / "noisy.png", sigma=8)
    Image.open(paths[5]).convert("L").convert("RGB").save(tmp_path / "gray.png")
    paths += [str(tmp_path / "noisy.png"), str(tmp_path / "gray.png")]
    v = np.random.default_rng(1).standard_normal((len(paths), 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)         # no pair reaches dup_min_sim
    inp = AnalysisInput(ids=[f"s{i}" for i in range(len(paths))], vectors=v, filepaths=paths)
    res = REGISTRY["duplicates"].run(inp)
    g = res.fields["vc_dup_group"]
    assert g[2] == g[8] is not None and g[5] == g[9] is not None
    assert sum(x is not None for x in g) == 4
    assert res.summary["candidates"] == 0 and res.summary["pixel_candidates"] >= 2
    off = REGISTRY["duplicates"].run(inp, dup_pixel_candidates=False).fields["vc_dup_group"]
    assert all(x is None for x in off)


def test_grayscale_copy_matches_but_a_recoloured_picture_does_not(tmp_path):
    """Colour is compared when both pictures have colour: a grayscale copy is the same picture,
    the same drawing in other colours is not."""
    paths = _pictures(tmp_path, n=3)
    a = np.asarray(Image.open(paths[0]).convert("RGB"))
    Image.open(paths[0]).convert("L").convert("RGB").save(tmp_path / "gray.png")
    Image.fromarray(np.ascontiguousarray(a[:, :, ::-1])).save(tmp_path / "swapped.png")
    paths += [str(tmp_path / "gray.png"), str(tmp_path / "swapped.png")]
    e = np.eye(8, dtype=np.float32)
    v = np.stack([e[0], e[1], e[2], (e[0] + e[3]) / 2 ** 0.5, (e[0] + e[4]) / 2 ** 0.5])
    g = REGISTRY["duplicates"].run(AnalysisInput(   # candidates: (0, 3) and (0, 4) only
        ids=[f"s{i}" for i in range(len(paths))], vectors=v, filepaths=paths),
        dup_min_sim=0.7, dup_pixel_candidates=False).fields["vc_dup_group"]
    assert g[0] == g[3] is not None
    assert g[4] is None


def test_small_glyphs_stay_apart_while_their_tone_changed_copies_are_found(tmp_path):
    """Tux Paint's math operators are small glyphs on a white canvas (plus and divide, minus
    and equals): the frame-wide residual barely sees them, the residual over the drawn part
    does. Every glyph gets a copy with its contrast or gamma changed (a tone map, which the
    check fits per channel): each copy is grouped with its own glyph and no two glyphs are."""
    from tools.planted_sets import edit_contrast, edit_gamma, stamps

    src = stamps()
    rows = [i for i, c in enumerate(src.labels) if c == "math/operators"]
    assert len(rows) >= 8
    rng = np.random.default_rng(5)
    n = len(rows)
    paths = [str(tmp_path / f"op{j}.png") for j in range(n)] + \
        [str(tmp_path / f"copy{j}.png") for j in range(n)]
    for j, i in enumerate(rows):
        im = src.image(i)
        im.save(paths[j])
        (edit_contrast if j % 2 else edit_gamma)(im, rng, 1.0)[0].save(paths[n + j])
    from bench.effnet import embed_files

    inp = AnalysisInput(ids=[Path(p).stem for p in paths], vectors=embed_files(paths),
                        filepaths=paths)
    g = REGISTRY["duplicates"].run(inp).fields["vc_dup_group"]
    originals = [g[j] for j in range(n) if g[j] is not None]
    assert len(originals) == len(set(originals)), g        # no two glyphs in one group
    found = [g[j] is not None and g[j] == g[n + j] for j in range(n)]
    assert np.mean(found) >= 0.8, list(zip(paths, g))


def test_forked_readers_do_not_hang_after_opencv_used_threads(tmp_path):
    """A process that has run OpenCV on several threads (any earlier image work) and then
    reads enough images for forked readers: the children must not wait forever on OpenCV's
    thread pool (they did: its threads do not survive a fork)."""
    import subprocess
    import sys

    from visual_curation.core.analyzers import pixels

    paths = _pictures(tmp_path, n=2)
    script = (
        "import sys, numpy as np, cv2\n"
        "cv2.setNumThreads(2)\n"
        "a = np.random.rand(2000, 2000).astype(np.float32)\n"
        "for _ in range(5): cv2.resize(a, (1500, 1500)); cv2.GaussianBlur(a, (15, 15), 3)\n"
        "from visual_curation.core.analyzers import pixels\n"
        f"paths = {paths!r} * {pixels.PROCESS_MIN_ITEMS // 2 + 1}\n"
        "out, err = pixels.map_items(lambda rgb: float(cv2.resize(rgb, (8, 8)).sum()),\n"
        "                            range(len(paths)), paths)\n"
        "assert len(out) == len(paths) and not err\n"
        "assert cv2.getNumThreads() == 2\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_verified_chains_become_stars_around_a_centre():
    """A chain of verified pairs (each picture within tolerance of the next) is not one picture:
    groups are stars, a member joining only when it passes against the centre itself."""
    from visual_curation.core.analyzers.dup_pixels import star_groups

    checked = []

    def refuse(pairs):
        checked.extend(pairs)
        return []

    chain = [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert sorted(star_groups(chain, refuse)) == [(1, 0), (1, 2), (3, 4)]
    assert (1, 3) in checked                            # checked, not assumed
    assert (1, 4) not in checked                        # beyond a member that failed
    # an original with copies proposed only against one another still forms one group when
    # each copy passes against the centre directly
    assert sorted(star_groups(chain, lambda pairs: list(pairs))) == [
        (1, 0), (1, 2), (1, 3), (1, 4)]
    # a pair stays a pair; separate groups stay apart
    assert sorted(star_groups([(5, 9), (7, 8)], refuse)) == [(5, 9), (7, 8)]
    assert star_groups([], refuse) == []


def test_registration_keeps_everyday_motions_only_and_scales_between_sizes():
    """:func:`plausible` accepts small turns, shifts and crops and refuses what no everyday
    edit does; a motion found on thumbnails, scaled, is the motion at the larger size."""
    import cv2

    from visual_curation.core.analyzers.dup_register import plausible, scaled

    def turn(deg, side, shift=(0.0, 0.0), scale=1.0):
        c = (side - 1) / 2
        W = cv2.getRotationMatrix2D((c, c), deg, scale).astype(np.float32)
        W[:, 2] += shift
        return W

    assert plausible(turn(4, 32), 32) and plausible(turn(-3, 32, (3, -2), 0.9), 32)
    assert not plausible(turn(25, 32), 32)                 # a turn, not a copy
    assert not plausible(turn(0, 32, (12, 0)), 32)         # most of the picture gone
    assert not plausible(turn(0, 32, scale=0.5), 32)
    sheared = np.array([[1, 0.4, 0], [0, 1, 0]], np.float32)
    assert not plausible(sheared, 32)

    shapes = np.zeros((256, 256), np.float32)
    cv2.ellipse(shapes, (110, 120), (60, 35), 20, 0, 360, 1.0, -1)
    cv2.rectangle(shapes, (150, 40), (210, 90), 0.6, -1)
    cv2.circle(shapes, (70, 200), 25, 0.3, -1)
    big = cv2.GaussianBlur(shapes, (0, 0), 3)
    W256 = turn(3, 256, (9, -6))
    moved = cv2.warpAffine(big, W256, (256, 256), flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)

    def find(side):          # the motion from ``big``'s pixels to ``moved``'s at ``side``
        a = cv2.resize(big, (side, side), interpolation=cv2.INTER_AREA)
        b = cv2.resize(moved, (side, side), interpolation=cv2.INTER_AREA)
        crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
        return cv2.findTransformECC(a, b, np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE,
                                    crit, None, 1)[1]

    w32, w128 = find(32), find(128)
    truth = cv2.invertAffineTransform(W256)
    assert np.allclose(scaled(w32, 32, 128), w128, atol=0.5), (scaled(w32, 32, 128), w128)
    assert np.allclose(scaled(w128, 128, 256), truth, atol=0.5), (scaled(w128, 128, 256), truth)


def test_a_copy_with_a_wide_border_registers_whichever_image_leads():
    """A frame added around a picture (then resized to the original size: a zoom-out) shows
    the whole original inside part of the copy's frame: the registration accepts it with
    either image as the template (the pair's order is the dataset's), while a motion that
    leaves half of each frame unshared is refused (:func:`shared_share`)."""
    import cv2

    from visual_curation.core.analyzers import dup_pixels as dp
    from visual_curation.core.analyzers.dup_register import LIMITS, register, shared_share

    rng = np.random.default_rng(5)
    img = np.zeros((224, 224, 3), np.uint8)
    for _ in range(12):
        c = tuple(int(x) for x in rng.integers(0, 256, 3))
        cv2.circle(img, tuple(int(x) for x in rng.integers(30, 194, 2)),
                   int(rng.integers(10, 40)), c, -1)
    cv2.rectangle(img, (40, 60), (120, 150), (230, 200, 40), 4)
    pad = 30                                            # 13 % of the side on every edge
    framed = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                value=(0, 0, 0))
    framed = cv2.resize(framed, (224, 224), interpolation=cv2.INTER_AREA)
    crops = [0.0]
    G0 = np.stack([dp.signature(x, crops)[0][0] for x in (framed, img)])
    zoom = (224 + 2 * pad) / 224
    for a, b, scale in ((0, 1, zoom), (1, 0, 1 / zoom)):
        W, corr, det = register(G0, np.array([a]), np.array([b]))
        assert W[0] is not None and corr[0] >= 0.95, (a, b, corr, det)
        sx, sy = np.linalg.norm(W[0][:, 0]), np.linalg.norm(W[0][:, 1])
        assert abs(sx / scale - 1) < 0.05 and abs(sy / scale - 1) < 0.05, (a, b, W[0])
    c = (32 - 1) / 2
    zoom_out = cv2.getRotationMatrix2D((c, c), 0, 1.28).astype(np.float32)
    assert shared_share(zoom_out, 32) > 0.9
    half = np.float32([[1, 0, 16], [0, 1, 0]])          # half of each frame unshared
    assert shared_share(half, 32) < LIMITS["overlap"]


def test_stage_two_decodes_each_image_about_once_in_a_local_order(tmp_path):
    """The stage-2 image cache keeps the most recently used images within its byte budget;
    the check order puts pairs that share images together, so a chain of pairs reads each
    image once even with a cache of three images."""
    from visual_curation.core.analyzers import pixels
    from visual_curation.core.analyzers.dup_verify import local_order

    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.png"
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(p)
        paths.append(str(p))
    one = 20 * 30 * 3
    cache = pixels.ImageCache(paths, max_bytes=2 * one)
    assert cache(0)[0, 0, 0] == 0 and cache(1)[0, 0, 0] == 40 and cache.reads == 2
    cache(0)                                  # 0 is now the most recent: 1 goes next
    cache(2)
    assert cache.reads == 3
    cache(0)
    assert cache.reads == 3                   # kept
    cache(1)
    assert cache.reads == 4                   # dropped, read again

    rng = np.random.default_rng(5)
    chain = np.array([(i, i + 1) for i in range(0, 5)])      # 0-1, 1-2, ... 4-5
    shuffled = chain[rng.permutation(len(chain))]
    order = local_order(shuffled)
    assert sorted(order.tolist()) == list(range(len(chain)))
    cache = pixels.ImageCache(paths, max_bytes=3 * one)
    for a, b in shuffled[order]:
        cache(a), cache(b)
    assert cache.reads == 6                   # every image once
    cache = pixels.ImageCache(paths, max_bytes=3 * one)
    for a, b in shuffled:
        cache(a), cache(b)
    assert cache.reads > 6                    # the shuffled order reads some again


def test_a_logo_beside_a_thin_outline_glyph_is_an_overlay_a_bar_attached_to_it_is_not():
    """An outline letter draws few pixels, so a logo or caption in a corner adds more than a
    quarter of them: the overlay check accepts it because it stays apart from the drawing.
    A thick bar attached to the letter (a new symbol, as an I with a bar is a T) is still
    refused (only the few bars smaller than a quarter of the letter count as marks)."""
    from PIL import ImageDraw

    from tools.planted_sets import edit_text, edit_watermark, stamps
    from visual_curation.core.analyzers.dup_overlay import overlay_check

    src = stamps()
    rows = [i for i, c in enumerate(src.labels) if c == "outlined/uppercase"]
    assert len(rows) >= 20
    rng = np.random.default_rng(5)
    found, bars = [], []
    for i in rows:
        im = src.image(i).convert("RGB")
        a = np.asarray(im)
        for edit in (edit_watermark, edit_text):
            b = np.asarray(edit(im, rng, 1.0)[0].convert("RGB"))
            found.append(overlay_check(a, b, 0.6)["overlay"] is not None)
        ys, xs = np.nonzero(a.mean(axis=2) < 128)
        j = xs.argmax()
        barred = im.copy()
        w = im.width // 14
        ImageDraw.Draw(barred).line([(int(xs[j]) - w, int(ys[j])),
                                     (min(im.width - 2, int(xs[j]) + im.width // 4),
                                      int(ys[j]))], fill=(0, 0, 0), width=w)
        bars.append(overlay_check(a, np.asarray(barred), 0.6)["overlay"] is not None)
    assert np.mean(found) >= 0.7, np.mean(found)
    assert np.mean(bars) <= 0.15, np.mean(bars)


def _copies_of(src, rows, edit, strengths, folder):
    """Each picture ``rows`` of ``src`` and its copy by ``edit`` (strength drawn from
    ``strengths``, a seeded callable), side by side; returns ``found()``: the share of copies
    grouped with their picture, checking that no two pictures are grouped together."""
    from bench.effnet import embed_files

    paths = []
    for j, i in enumerate(rows):
        im = src.image(i).convert("RGB")
        paths += [str(folder / f"orig{j}.png"), str(folder / f"copy{j}.png")]
        im.save(paths[-2])
        edit(im, strengths())[0].save(paths[-1])
    inp = AnalysisInput(ids=[Path(p).stem for p in paths], vectors=embed_files(paths),
                        filepaths=paths)

    def found():
        g = REGISTRY["duplicates"].run(inp).fields["vc_dup_group"]
        origs = [g[2 * j] for j in range(len(rows)) if g[2 * j] is not None]
        assert len(origs) == len(set(origs))             # distinct pictures apart
        return np.mean([g[2 * j] is not None and g[2 * j] == g[2 * j + 1]
                        for j in range(len(rows))])

    return found


def test_shifted_copies_of_thin_line_art_reach_the_full_size_check(tmp_path):
    """An outline letter moved by a few pixels loses grey and fine-detail correlation to the
    32-pixel warp itself (thin strokes); registration counts only what a copy lost beyond
    that resampling, so such copies reach the full-size check and are found, while distinct
    letters stay apart."""
    from tools.planted_sets import edit_shift, stamps

    src = stamps()
    rows = [i for i, c in enumerate(src.labels) if c == "outlined/uppercase"]
    rng = np.random.default_rng(3)
    found = _copies_of(src, rows, lambda im, s: edit_shift(im, rng, s),
                       lambda: rng.uniform(0.0, 0.3), tmp_path)
    assert found() >= 0.85    # half of them before resampling was discounted


@pytest.mark.parametrize("source,edit", [("fmnist", "edit_sharpen"), ("stamps", "edit_blur")])
def test_sharpened_or_softened_copies_are_compared_softened_alike(tmp_path, monkeypatch,
                                                                   source, edit):
    """A sharpening filter (halos at every edge) or a strong blur leaves a residual no tone
    map removes; where the two images differ in sharpness, the pair is compared again with
    both softened alike, so such copies are found (fewer without it) and distinct pictures
    of one kind stay apart."""
    import tools.planted_sets as ps
    from visual_curation.core.analyzers import dup_pixels

    src = getattr(ps, source)()
    rng = np.random.default_rng(7)
    kind = "sneaker" if source == "fmnist" else "outlined/uppercase"
    rows = [i for i, c in enumerate(src.labels) if c.lower().startswith(kind)][:40]
    found = _copies_of(src, rows, lambda im, s: getattr(ps, edit)(im, rng, s),
                       lambda: rng.uniform(0.5, 1.0), tmp_path)
    on = found()
    monkeypatch.setattr(dup_pixels, "FILTERED", (0.0, dup_pixels.FILTERED[1]))
    off = found()
    assert on >= 0.8 and off <= on - 0.2, (on, off)   # measured: 0.95 / 0.72, 0.87 / 0.13
