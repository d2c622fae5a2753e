"""The analyzer interface: one input, one result, one ``run``.

Every analyzer is App-free: it gets plain arrays and lists in an :class:`AnalysisInput` and
returns per-item field values in an :class:`AnalysisResult`. The FiftyOne wiring
(``core/analyze.py``) builds the input from a collection and writes the fields back.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import knn as _knn


@dataclass
class SharedWork:
    """What one analyzer computes that others on the same :class:`AnalysisInput` reuse, so
    that each is computed once per run."""

    #: kNN graphs: k -> (indices (N, k), cosine sims (N, k)); see :meth:`AnalysisInput.knn`
    knn: dict = field(default_factory=dict)
    #: how the graph was computed (``{"method": "exact" | "ivf", ...}``)
    knn_info: dict | None = None
    #: image-quality statistics measured while the duplicate check had an image decoded:
    #: ``{max_side: {item: stats}}`` (``quality.pixel_stats``)
    pixel_stats: dict = field(default_factory=dict)
    #: duplicate-check thumbnails of the images decoded in this run: ``{item: (full
    #: thumbnail, keep stats)}``, kept by the run for later incremental runs
    dup_signatures: dict = field(default_factory=dict)
    #: how many images the duplicate check decoded, read from the store, or decoded after all
    dup_decoded: dict | None = None
    #: class support (``support.class_support``) per (classes, label codes)
    class_support: dict = field(default_factory=dict)
    #: duplicate groups of this run: the group's root item per item (``None`` until the
    #: duplicate check ran)
    dup_roots: np.ndarray | None = None


def encode_array(a) -> dict:
    """A NumPy array as JSON (base64 float32) for run results and state."""
    import base64

    a = np.ascontiguousarray(a, np.float32)
    return dict(shape=list(a.shape), b64=base64.b64encode(a.tobytes()).decode("ascii"))


def decode_array(d) -> np.ndarray:
    """The inverse of :func:`encode_array` (float32)."""
    import base64

    data = d["b64"] if "b64" in d else d["data"]      # "data": runs of earlier versions
    return np.frombuffer(base64.b64decode(data), np.float32).reshape(d["shape"])


@dataclass
class AnalysisInput:
    ids: list[str]                      # sample ids (or detection label ids)
    vectors: np.ndarray                 # (N, D) float32 or float16, rows L2-normalised
    labels: list[str | None] | None = None       # class per item; None = no label field
    filepaths: list[str] | None = None  # image file per item (pixel analyzers)
    boxes: list[list[float] | None] | None = None  # relative [x, y, w, h] crop per item, else None
    sizes: list[tuple[int, int] | None] | None = None  # (width, height) of the item's image
    content_hashes: list[str | None] | None = None     # exact-file hash (sha1) if known
    created: list[float] | None = None   # creation timestamp, for "keep the oldest"
    knn_method: str = "auto"             # "exact", "ivf" or "auto" (by size: knn.knn_graph)
    planned: tuple = ()                  # analyses that will run on this input (pixel sharing)
    #: the run's parameters, ``{analysis: {name: value}}`` as given; :meth:`settings` fills in
    #: the defaults (an analyzer reading another's parameter reads the run's value)
    params: dict = field(default_factory=dict)
    shared: SharedWork = field(default_factory=SharedWork, repr=False, compare=False)

    MIN_K = 32  # class attribute (not a field): neighbours computed on the first knn() call

    def __post_init__(self):
        v = np.asarray(self.vectors)
        if v.ndim != 2:
            v = v.reshape(len(self.ids), -1)
        if v.dtype not in (np.float32, np.float16) and not isinstance(v, np.memmap):
            v = v.astype(np.float32)
        self.vectors = v
        if len(self.vectors) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.vectors)} vectors")
        for name in ("labels", "filepaths", "boxes", "sizes", "content_hashes", "created"):
            val = getattr(self, name)
            if val is not None and len(val) != len(self.ids):
                raise ValueError(f"{name} has {len(val)} items, expected {len(self.ids)}")

    def __len__(self):
        return len(self.ids)

    def settings(self, analysis: str) -> dict:
        """The parameters ``analysis`` runs with in this run: its defaults, overridden by the
        run's ``params``."""
        from . import REGISTRY

        return REGISTRY[analysis].params(**self.params.get(analysis, {}))

    def knn(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cached cosine kNN graph: ``(indices (N,k) int, sims (N,k) float32)``, self excluded,
        sorted by decreasing similarity - exact for small inputs, IVF above
        ``knn.EXACT_MAX_ROWS`` (see :func:`knn.knn_graph`; ``knn_info()`` says which). ``k`` is
        capped at N-1; a cached larger k is sliced. The first call computes at least ``MIN_K``
        neighbours (nearly free: the cost is the matrix products), so analyzers asking for
        different k share one pass."""
        k = max(0, min(int(k), len(self.ids) - 1))
        have = [kk for kk in self.shared.knn if kk >= k]
        if have:
            ind, sim = self.shared.knn[min(have)]
            return ind[:, :k], sim[:, :k]
        kk = max(0, min(max(k, self.MIN_K), len(self.ids) - 1))
        ind, sim, info = _knn.knn_graph(self.vectors, kk, method=self.knn_method)
        self.shared.knn[kk] = (ind, sim)
        self.shared.knn_info = info
        return ind[:, :k], sim[:, :k]

    def knn_info(self) -> dict:
        """How the kNN graph was (or will be) computed: ``{"method": "exact"|"ivf", ...}``."""
        if self.shared.knn_info is None:
            exact = self.knn_method == "exact" or (
                self.knn_method == "auto" and len(self.ids) <= _knn.EXACT_MAX_ROWS)
            return dict(method="exact" if exact else "ivf", n=len(self.ids))
        return self.shared.knn_info

    def label_array(self):
        """``(codes int array, -1 = no label; class names list)`` for ``labels``."""
        if self.labels is None:
            return None, []
        names = sorted({str(l) for l in self.labels if l is not None})
        lut = {c: i for i, c in enumerate(names)}
        codes = np.array([lut[str(l)] if l is not None else -1 for l in self.labels], np.int64)
        return codes, names


@dataclass(frozen=True)
class FieldSpec:
    """A field an analyzer writes: name (``vc_`` prefix), kind (``"int"``, ``"float"``,
    ``"str"``, ``"bool"`` or ``"list[str]"``) and the description the App shows."""

    name: str
    kind: str
    description: str


@dataclass(frozen=True)
class IssueSpec:
    """An issue an analyzer flags: its name in ``vc_issues`` and the field it is read from
    (a confidence in [0, 1] compared with the run's threshold, or a bool flag)."""

    name: str
    field: str
    flag: bool = False

    def hits(self, value, threshold: float) -> bool:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return False
        return bool(value) if self.flag else float(value) >= threshold


@dataclass
class IncrementalInput:
    """What :meth:`Analyzer.update` gets: the whole input, the rows to analyse now (``new``),
    the rows the earlier run analysed (``old`` mask), the new rows' neighbours and class
    support (one pass, shared by every analyzer), and the earlier run: its summaries
    (``details``) and stored values (``read``). Analyzers write with :meth:`put`."""

    inp: AnalysisInput
    new: np.ndarray                      # row indices of ``inp`` to analyse
    old: np.ndarray                      # bool mask: rows the earlier run analysed
    ind: np.ndarray                      # (len(new), k) nearest rows, self excluded
    sim: np.ndarray                      # (len(new), k) their cosines
    support: np.ndarray                  # (len(new), C) exact support by each class
    codes: np.ndarray                    # label code per row (-1: none)
    classes: list                        # class names of the codes
    details: dict                        # the earlier run's summaries, per analysis
    read: object                         # read(rows, fields) -> {field: [stored value]}
    read_groups: object                  # read_groups(group ids) -> [(row, group id)]
    signatures: object = None            # stored duplicate-check thumbnails, or None
    values: dict = field(default_factory=dict)    # field -> {row: value}, the output
    errors: dict = field(default_factory=dict)    # row -> message
    summary: dict = field(default_factory=dict)   # what the run reports
    #: outlier confidence of the new rows (outliers and mislabels both use it)
    outlier_confidence: np.ndarray | None = None

    def put(self, name: str, rows, vals):
        col = self.values.setdefault(name, {})
        for r, v in zip(rows, vals):
            col[int(r)] = v

    def state(self, analysis: str) -> dict | None:
        """The calibration the earlier run of ``analysis`` kept (its summary's ``state``)."""
        return (self.details.get(analysis) or {}).get("state")


@dataclass
class AnalysisResult:
    #: field name -> per-item values, len N: a list, or for a numeric field a NumPy array
    #: (NaN = no value; an array keeps 8 bytes a value where a list of floats takes 32)
    fields: dict
    summary: dict           # JSON-serialisable (counts, cluster summaries, params used)
    errors: dict = field(default_factory=dict)  # item index -> message (e.g. unreadable image)


class Analyzer:
    """Base class. Subclasses set the class attributes and implement :meth:`run`."""

    name: str = ""
    needs_labels: bool = False
    needs_pixels: bool = False
    #: the fields it writes, and the issues it flags (from those fields)
    field_specs: tuple[FieldSpec, ...] = ()
    issues: tuple[IssueSpec, ...] = ()
    #: the field names of ``field_specs``, in order (set for each subclass)
    fields: tuple[str, ...] = ()
    defaults: dict = {}
    #: one line per parameter, for UIs and docs
    param_help: dict = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.fields = tuple(f.name for f in cls.field_specs)

    def params(self, **overrides) -> dict:
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameter(s) {sorted(unknown)}")
        p = dict(self.defaults)
        p.update({k: v for k, v in overrides.items() if v is not None})
        return p

    def check(self, inp: AnalysisInput):
        if self.needs_labels and inp.labels is None:
            raise ValueError(f"{self.name} needs labels")
        if self.needs_pixels and inp.filepaths is None:
            raise ValueError(f"{self.name} needs filepaths")

    def run(self, inp: AnalysisInput, progress=None, **params) -> AnalysisResult:
        raise NotImplementedError

    def missing_state(self, details: dict, classes: list) -> str | None:
        """Why the earlier run's ``details`` cannot place new items (None: they can)."""
        return None

    def update(self, ctx: IncrementalInput, p: dict) -> None:
        """Analyses ``ctx.new`` on the earlier run's calibration, writing with ``ctx.put``
        (see :mod:`visual_curation.core.incremental`); ``p``: this run's parameters."""
        raise NotImplementedError(f"{self.name} has no incremental update")

    def __repr__(self):
        return f"<Analyzer {self.name} fields={self.fields}>"


def logistic(x):
    """The confidence curve every analyzer uses: 1 / (1 + e^-x), elementwise, 0.5 at 0."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def report(progress, frac: float, msg: str = ""):
    """Call ``progress(frac, msg)`` if given; a failing callback never stops an analysis."""
    if progress is not None:
        try:
            progress(float(min(max(frac, 0.0), 1.0)), msg)
        except Exception:
            pass


def jsonable(x):
    """Recursively convert NumPy scalars/arrays to plain Python for JSON."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
