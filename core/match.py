"""How good the best match of a search is, judged on the dataset itself.

A similarity search always returns its ``k`` nearest items, whether or not anything in the
dataset looks like the query. Cosine scales differ between models (and text-to-image scores sit
far below image-to-image ones), so no fixed number says "good match". The judgement is
calibrated per dataset and model, on a reference sample of the dataset's own vectors (at most
:data:`REFERENCE_MAX`, seeded):

* **text**: the query's *level* is the mean similarity of its :data:`TOP` best reference items.
  It is compared with the levels that prompts about unrelated everyday things reach on this
  dataset (:data:`UNRELATED`: their median and robust spread) and, when the dataset has a
  classification field, with the levels of prompts naming its classes (what a match looks
  like here). The line is two robust SDs above the unrelated prompts' median, or halfway to the
  class prompts' median when that is closer. Words unrelated to *this* dataset
  that it does show (a dataset of dogs) only move the median of :data:`UNRELATED` a little.
* **image** (an uploaded image or a region): the query's best similarity in the reference
  sample is compared with how close the reference items are to their own nearest neighbour
  there: a match weaker than :data:`IMAGE_PERCENTILE` % of the dataset's own nearest-neighbour
  similarities is called weak.

Example::

    from visual_curation.core import match

    q = match.text_match(dataset, conf, "a photo of a dog", best=0.41)
    q.good, q.message("a photo of a dog")
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analyzers.support import robust_ref
from .knn import normalize

REFERENCE_MAX = 20000
TOP = 10
MAX_CLASSES = 100
IMAGE_PERCENTILE = 5
IMAGE_PROBES = 500
TEMPLATE = "a photo of a {}"
UNRELATED = (
    "dog", "cat", "horse", "bird", "fish", "elephant", "car", "bicycle", "airplane", "boat",
    "train", "bus", "house", "bridge", "castle", "mountain", "beach", "forest", "river",
    "desert", "city street", "kitchen", "bedroom", "office", "pizza", "banana", "apple",
    "cake", "coffee cup", "bottle", "chair", "table", "sofa", "lamp", "clock", "book",
    "laptop", "keyboard", "phone", "television", "guitar", "piano", "ball", "kite",
    "umbrella", "flower", "tree", "cloud", "snow", "fire", "person", "baby", "face", "hand",
    "crowd", "painting", "map", "text document", "diagram", "rock",
)

_CACHE: dict = {}


@dataclass(frozen=True)
class MatchQuality:
    """The judgement of one query: ``kind`` "text" or "image"; ``score`` what was compared
    (text: the top-:data:`TOP` level; image: the best reference similarity); ``line`` the score
    under which the match is weak; ``unrelated`` (text) the median level of unrelated prompts;
    ``typical`` the level of a typical match (text: class prompts, None without classes;
    image: the median nearest-neighbour similarity); ``best`` the best result's similarity."""

    kind: str
    best: float
    score: float
    line: float
    unrelated: float | None
    typical: float | None

    @property
    def good(self) -> bool:
        return self.score >= self.line

    def message(self, query: str = "", count: int | None = None) -> str:
        """One line for the user: what was found, and how good the best match is."""
        what = f" for {query!r}" if query else ""
        shown = f"the {count:,} nearest" if count is not None else "the nearest"
        if self.kind == "text":
            typical = (f"; prompts naming this dataset's classes reach {self.typical:.2f}"
                       if self.typical is not None else "")
            if self.good:
                return (f"Good match{what}: its best results reach {self.score:.2f} (cosine "
                        f"similarity), above the {self.line:.2f} that marks a match here "
                        f"(unrelated prompts reach {self.unrelated:.2f}{typical}).")
            return (f"No good match{what}: its best results reach {self.score:.2f} (cosine "
                    f"similarity), about what prompts about unrelated things reach on this "
                    f"dataset ({self.unrelated:.2f}){typical}. Showing {shown} anyway.")
        if self.good:
            return (f"Closest match{what}: similarity {self.best:.2f}, as close as images of "
                    f"this dataset are to their own nearest neighbour (typically "
                    f"{self.typical:.2f}).")
        return (f"No close match{what}: the closest image has similarity {self.best:.2f}, "
                f"less than {100 - IMAGE_PERCENTILE}% of this dataset's images have with "
                f"their nearest neighbour ({self.line:.2f}; typically {self.typical:.2f}). "
                f"Showing {shown} anyway.")

    def to_dict(self) -> dict:
        return dict(kind=self.kind, good=self.good, best=round(self.best, 4),
                    score=round(self.score, 4), line=round(self.line, 4),
                    unrelated=None if self.unrelated is None else round(self.unrelated, 4),
                    typical=None if self.typical is None else round(self.typical, 4))


def reference(collection, conf) -> np.ndarray:
    """At most :data:`REFERENCE_MAX` normalised vectors of ``collection``'s items (seeded),
    cached per table version and collection."""
    from .store import VectorStore

    store = VectorStore(conf["table"], uri=conf.get("uri"))
    ids = collection.values("id")
    key = ("ref", conf["table"], conf.get("uri"), store.table.version, len(ids),
           ids[0] if ids else None, ids[-1] if ids else None)
    if key not in _CACHE:
        if len(ids) > REFERENCE_MAX:
            pick = np.random.default_rng(0).choice(len(ids), REFERENCE_MAX, replace=False)
            ids = [ids[i] for i in np.sort(pick)]
        _, vecs, _ = store.vectors(ids)
        _remember(key, normalize(vecs))
    return _CACHE[key]


def _remember(key, value):
    while len(_CACHE) >= 16:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = value


def levels(ref: np.ndarray, queries: np.ndarray, top: int = TOP) -> np.ndarray:
    """The mean similarity of each query's ``top`` best reference items."""
    sims = ref @ np.atleast_2d(queries).astype(np.float32).T          # (R, Q)
    t = min(top, len(ref))
    return np.sort(sims, axis=0)[-t:].mean(axis=0)


def class_names(dataset, label_field: str | None = None) -> list[str]:
    """The classes of ``label_field`` (default: the first classification field, preferring
    ``ground_truth``), at most :data:`MAX_CLASSES` (seeded); [] when there is none."""
    import fiftyone as fo

    fields = list(dataset.get_field_schema(embedded_doc_type=fo.Classification))
    if label_field not in fields:
        label_field = "ground_truth" if "ground_truth" in fields else (fields or [None])[0]
    if label_field is None:
        return []
    names = [str(c) for c in dataset.distinct(f"{label_field}.label") if c]
    if len(names) > MAX_CLASSES:
        pick = np.random.default_rng(0).choice(len(names), MAX_CLASSES, replace=False)
        names = [names[i] for i in np.sort(pick)]
    return names


def text_match(collection, conf, query_vector, *, best: float,
               label_field: str | None = None) -> MatchQuality:
    """The judgement of a text query (its embedded ``query_vector``; ``best`` the best
    result's similarity) on ``collection``, with embeddings run ``conf`` (a CLIP model's)."""
    from .embeddings import embed_text

    ref = reference(collection, conf)
    if not len(ref):
        return MatchQuality("text", float(best), float(best), -1.0, None, None)
    classes = class_names(collection._dataset, label_field)
    key = ("text", conf["table"], conf.get("model"), conf.get("pretrained"), len(ref),
           float(ref[:64].sum()) if len(ref) else 0.0, tuple(classes))
    if key not in _CACHE:
        prompts = [TEMPLATE.format(w) for w in UNRELATED + tuple(classes)]
        T = embed_text(prompts, model=conf.get("model"), pretrained=conf.get("pretrained"))
        lv = levels(ref, T)
        _remember(key, (lv[:len(UNRELATED)], lv[len(UNRELATED):]))
    null_lv, class_lv = _CACHE[key]
    mu0, s0 = robust_ref(np.asarray(null_lv, np.float64), floor=1e-3)
    typical, line = None, mu0 + 2.0 * s0
    if len(class_lv):
        typical = float(np.median(class_lv))
        if typical > mu0:
            line = mu0 + min(2.0 * s0, (typical - mu0) / 2.0)
    score = float(levels(ref, query_vector)[0])
    return MatchQuality("text", float(best), score, float(line), mu0, typical)


def image_match(collection, conf, query_vector, *, best: float) -> MatchQuality:
    """The judgement of an image query (an upload or a region, embedded as
    ``query_vector``) on ``collection``: its best reference similarity against the reference
    items' own nearest-neighbour similarities."""
    ref = reference(collection, conf)
    if len(ref) < 2:
        return MatchQuality("image", float(best), float(best), -1.0, None, float(best))
    key = ("image", conf["table"], len(ref), float(ref[:64].sum()) if len(ref) else 0.0)
    if key not in _CACHE:
        rng = np.random.default_rng(0)
        probes = rng.choice(len(ref), min(IMAGE_PROBES, len(ref)), replace=False)
        sims = ref[probes] @ ref.T
        sims[np.arange(len(probes)), probes] = -np.inf        # not themselves
        nn = sims.max(axis=1)
        _remember(key, (float(np.percentile(nn, IMAGE_PERCENTILE)), float(np.median(nn))))
    line, typical = _CACHE[key]
    q = normalize(np.atleast_2d(query_vector))[0]
    score = float((ref @ q).max()) if len(ref) else float(best)
    return MatchQuality("image", float(best), score, line, None, typical)
