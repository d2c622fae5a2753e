"""Copies with something drawn onto the picture's plain background: a caption, a logo, a
watermark, a stamp of text beside a product shot.

Stage 2 (:mod:`.dup_pixels`) rejects such a copy: the drawn strokes are a local difference,
as is the one mark that tells two different pictures apart. What sets an overlay apart is
where it lies and what it covers. The pair is compared on the box that holds the drawn part
of both images (so a small drawing on a large canvas is judged at its own size), after a tone
map fitted per colour channel on the pixels that agree (least squares, refitted three times
without the pixels that disagree, so the overlay does not bend the fit). The pixels left
different (residual > ``max_residual`` x the luminance SD) are the *change*; the pair is one
picture with an overlay when, for one of the two images (the original):

* the change lies in a compact box: at most :data:`LIMITS` ``["area"]`` of the compared frame;
* under the change the original shows its plain background (its border colour) on at least
  ``["canvas"]`` of the pixels: something was drawn *onto* the picture, not drawn
  *differently* (a letter changed on a dreidel, a lit lamp on a traffic light);
* the change is small next to the original's own drawing (changed pixels at most
  ``["added"]`` of the pixels the original draws) or it stays apart from that drawing (at most
  ``["touch"]`` of the changed pixels within :data:`APART` pixels of it, and at most
  ``["apart_added"]`` of its pixels: a logo in a corner beside a thin outline glyph), and at
  least ``["kept"]`` of the original's drawing lies outside the change and is drawn in the copy
  as well: the picture is still there (a flag added to a crotchet makes a quaver, a bar added
  to an I makes a T: both add as much as the symbol had, and touch it);
* outside the change, the pair passes the ordinary stage-2 measures (residual, foreground
  residual, brightness, contrast, sharpness ratios).

A caption written over the picture's content itself (not its background) is not recognised:
it cannot be told from a different detail by these measures.

Only pairs whose difference on the grey thumbnails already in memory lies in a box of at most
:data:`GATE_AREA` of the frame, mostly on one image's background (:data:`GATE_CANVAS`), are read
for the check (:func:`thumb_gate`): most candidate pairs are different pictures that differ all
over (on the 70k Fashion-MNIST set, 549 of the 63,243 undecided candidate pairs are read).
"""
from __future__ import annotations

import numpy as np

from .dup_pixels import FINE, GRAY_CHROMA, LUMA, chroma, foreground, measures

#: geometry of an overlay (see the module doc)
LIMITS = dict(area=0.3, canvas=0.8, added=0.25, kept=0.85, touch=0.05, apart_added=0.5)
#: pixels (of the FINE x FINE comparison) within which a change touches the original's drawing
APART = 2
#: pixels by which the change's box is widened before "outside the change" is measured
MARGIN = 3
_FAIL = dict(residual=np.inf, brightness=0.0, contrast=0.0, sharpness=0.0, foreground=np.inf)


#: the change's box on the grey thumbnails a pair must stay within to be read for the check
#: (looser than ``LIMITS["area"]``: the check zooms on the drawn part, which only enlarges a
#: change's share of the frame)
GATE_AREA = 0.4
#: ... and where at least this share of the changed thumbnail pixels (second number) are
#: within this many SD of the image's border colour (first) on one of the two images (looser
#: than ``LIMITS["canvas"]``: thumbnails blur strokes into their surroundings)
GATE_CANVAS = (0.5, 0.5)


def thumb_gate(G, pa, pb, max_residual: float, block: int = 4096) -> np.ndarray:
    """Bool mask of the pairs ``(G[pa[i]], G[pb[i]])`` of grey thumbnails (rows of ``THUMB``
    x ``THUMB``, zero mean) whose difference after a tone map fitted on the agreeing pixels
    lies in a box of at most :data:`GATE_AREA` of the frame and mostly on one image's
    background (:data:`GATE_CANVAS`; a difference too fine to show passes): the only pairs
    worth reading for :func:`overlay_check` (two different pictures differ all over)."""
    from .dup_pixels import THUMB

    out = np.zeros(len(pa), bool)
    for b0 in range(0, len(pa), block):
        A = G[pa[b0:b0 + block]].astype(np.float32)
        B = G[pb[b0:b0 + block]].astype(np.float32)
        sd = np.maximum(A.std(axis=1), B.std(axis=1))[:, None] + 1e-6
        use = np.ones(A.shape, bool)
        for _ in range(3):
            w = use.astype(np.float32)
            nw = w.sum(axis=1, keepdims=True)
            ma, mb = (A * w).sum(1, keepdims=True) / nw, (B * w).sum(1, keepdims=True) / nw
            da = (A - ma) * w
            gain = np.maximum((da * (B - mb)).sum(1, keepdims=True)
                              / np.maximum((da * (A - ma)).sum(1, keepdims=True), 1e-9), 0.0)
            r = np.abs(B - ((A - ma) * gain + mb)) / sd
            use = r <= np.maximum(np.quantile(r, 0.7, axis=1, keepdims=True), 0.3)
        changed = (r > max_residual).reshape(-1, THUMB, THUMB)
        rows, cols = changed.sum(axis=2) >= 2, changed.sum(axis=1) >= 2

        def extent(m):
            any_ = m.any(axis=1)
            first, last = m.argmax(axis=1), THUMB - 1 - m[:, ::-1].argmax(axis=1)
            return np.where(any_, last - first + 1, 0)

        area = extent(rows) * extent(cols) / float(THUMB * THUMB)
        plain = np.zeros(len(A))                  # the change on one image's background
        n_changed = np.maximum(changed.reshape(len(A), -1).sum(axis=1), 1)
        for X in (A, B):
            T = X.reshape(-1, THUMB, THUMB)
            edge = np.concatenate([T[:, 0], T[:, -1], T[:, :, 0], T[:, :, -1]], axis=1)
            near = np.abs(X - np.median(edge, axis=1, keepdims=True)) / sd < GATE_CANVAS[0]
            plain = np.maximum(plain, (near & changed.reshape(len(A), -1)).sum(axis=1)
                               / n_changed)
        none = ~changed.reshape(len(A), -1).any(axis=1)   # too fine for the thumbnails
        out[b0:b0 + block] = (area <= GATE_AREA) & ((plain >= GATE_CANVAS[1]) | none)
    return out


def zoomed(rgb_a, rgb_b):
    """Both images resized to FINE x FINE on the box holding the drawn part of either (the
    whole frame when little is drawn)."""
    import cv2

    def at(rgb, box=None):
        if box is not None:
            h, w = rgb.shape[:2]
            y0, y1, x0, x1 = box
            r0, c0 = int(y0 / FINE * h), int(x0 / FINE * w)
            rgb = rgb[r0:max(int(np.ceil(y1 / FINE * h)), r0 + 2),
                      c0:max(int(np.ceil(x1 / FINE * w)), c0 + 2)]
        return cv2.resize(rgb, (FINE, FINE), interpolation=cv2.INTER_AREA).astype(np.float32)

    a, b = at(rgb_a), at(rgb_b)
    fg = foreground(a @ LUMA, b @ LUMA)
    if fg.sum() < 16:
        return a, b
    ys, xs = np.nonzero(fg)
    box = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
    return at(rgb_a, box), at(rgb_b, box)


def robust_residual(a, b, sd, rounds: int = 3):
    """Per-pixel residual of ``b`` after a tone map of ``a`` (per channel, gain >= 0 and
    offset) fitted on the pixels that agree, in units of ``sd``."""
    A = a.reshape(-1, a.shape[-1]).astype(np.float64)
    B = b.reshape(-1, b.shape[-1]).astype(np.float64)
    use = np.ones(len(A), bool)
    for _ in range(rounds):
        ma, mb = A[use].mean(axis=0), B[use].mean(axis=0)
        da = A[use] - ma
        gain = np.maximum((da * (B[use] - mb)).sum(axis=0)
                          / np.maximum((da * da).sum(axis=0), 1e-6), 0.0)
        r = np.abs(B - ((A - ma) * gain + mb)).max(axis=-1) / sd
        use = r <= max(float(np.quantile(r, 0.7)), 0.3)
    return r.reshape(a.shape[:2])


def _canvas(x, sd):
    """Per-pixel distance of ``x`` (FINE x FINE x channels) to its border colour, in ``sd``."""
    edge = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]]).reshape(-1, x.shape[-1])
    return np.abs(x - np.median(edge, axis=0)).max(axis=-1) / sd


def touching(drawing, change) -> float:
    """Share of the ``change`` pixels within :data:`APART` pixels of ``drawing`` (bool
    masks of one shape)."""
    import cv2

    near = cv2.dilate(drawing.astype(np.uint8), np.ones((2 * APART + 1,) * 2, np.uint8))
    return float((change & near.astype(bool)).sum() / max(int(change.sum()), 1))


def overlay_check(rgb_a, rgb_b, max_residual: float) -> dict:
    """Stage-2 measures of the pair outside its change when the change is an overlay (see the
    module doc), else failing measures. ``overlay`` in the result: which image carries it
    (``"a"`` or ``"b"``), ``None`` when it is not an overlay."""
    from .dup_pixels import residual

    a, b = zoomed(rgb_a, rgb_b)
    la, lb = a @ LUMA, b @ LUMA
    gray = min(chroma(a), chroma(b)) < GRAY_CHROMA
    ca, cb = (la[:, :, None], lb[:, :, None]) if gray else (a, b)
    sd = max(float(la.std()), float(lb.std()), 1.0)
    change = robust_residual(ca, cb, sd) > max_residual
    if not change.any():
        return dict(_FAIL, overlay=None)
    ys, xs = np.nonzero(change)
    y0, y1 = np.quantile(ys, [0.02, 0.98]).astype(int)
    x0, x1 = np.quantile(xs, [0.02, 0.98]).astype(int)
    box = np.zeros(change.shape, bool)
    box[y0:y1 + 1, x0:x1 + 1] = True
    if box.mean() > LIMITS["area"]:
        return dict(_FAIL, overlay=None)
    wide = np.zeros(change.shape, bool)
    wide[max(0, y0 - MARGIN):y1 + 1 + MARGIN, max(0, x0 - MARGIN):x1 + 1 + MARGIN] = True
    rest = ~wide
    drawn_a, drawn_b = foreground(la, la), foreground(lb, lb)
    carrier = None
    for orig, x, drawn, other in (("a", ca, drawn_a, drawn_b), ("b", cb, drawn_b, drawn_a)):
        plain = (_canvas(x, sd)[change] < 0.25).mean() >= LIMITS["canvas"]
        n = max(int(drawn.sum()), 1)
        added = change.sum() / n
        small = added <= LIMITS["added"] or (
            added <= LIMITS["apart_added"]
            and touching(drawn & ~change, change) <= LIMITS["touch"])
        if plain and small and (drawn & other & rest).sum() >= LIMITS["kept"] * n:
            carrier = "b" if orig == "a" else "a"
            break
    if carrier is None or rest.sum() < 64:
        return dict(_FAIL, overlay=None)
    out = measures(residual(a, b, la, lb, gray, mask=rest), la, lb, mask=rest)
    fg = foreground(la, lb, rest)
    out["foreground"] = (residual(a, b, la, lb, gray, mask=fg, q=95) if fg.sum() >= 16
                         else 0.0)
    out["overlay"] = carrier
    return out
