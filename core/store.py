"""The LanceDB vector tables: one per (dataset, model, view kind), owned by Visual Curation.

Rows: ``id`` (sample id, or detection label id for object crops), ``sample_id``, ``filepath``,
``fingerprint`` (size:mtime), ``content_hash`` (sha1 of the file), ``width``/``height``, ``box``
(crops), ``vector`` (L2-normalised float32) and ``created_at``. Every write is one LanceDB commit,
so an interrupted run leaves the table at its last committed version, never torn.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from . import config as cfg

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def table_name(dataset, model_key, kind="images"):
    """``vc_<dataset id>__<model>__<kind>``: keyed by the dataset's id, so a renamed dataset keeps
    its table and a clone never shares the original's."""
    return _SAFE.sub("_", f"vc_{dataset._doc.id}__{model_key}__{kind}")


def kind_for(patches_field=None):
    return f"patches_{patches_field}" if patches_field else "images"


def connect(uri=None):
    """A LanceDB connection that always reads the latest committed table version, so a
    long-lived reader (the App) sees what another process (a delegated run) wrote."""
    from datetime import timedelta

    import lancedb

    uri = cfg.lancedb_uri(uri)
    kwargs = {}
    if not uri.startswith("db://"):
        kwargs["read_consistency_interval"] = timedelta(0)
    opts = cfg.storage_options_from_env(uri)
    if opts:
        kwargs["storage_options"] = opts
    return lancedb.connect(uri, **kwargs)


def schema(dim):
    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("sample_id", pa.string()),
        pa.field("filepath", pa.string()),
        pa.field("fingerprint", pa.string()),
        pa.field("content_hash", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("box", pa.list_(pa.float32(), 4)),
        pa.field("vector", pa.list_(pa.float32(), int(dim))),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ])


def list_tables(db):
    """Every table name in ``db`` (follows LanceDB's pagination)."""
    if not hasattr(db, "list_tables"):
        return list(db.table_names())
    names, token = [], None
    while True:
        resp = db.list_tables(page_token=token)
        names += list(resp.tables)
        token = getattr(resp, "page_token", None)
        if not token:
            return names


class VectorStore:
    """One LanceDB table of embeddings."""

    def __init__(self, name, uri=None):
        self.name = name
        self.uri = cfg.lancedb_uri(uri)
        self.db = connect(self.uri)
        self._table = None

    @classmethod
    def for_dataset(cls, dataset, model_key, kind="images", uri=None):
        return cls(table_name(dataset, model_key, kind), uri=uri)

    # -- table lifecycle -------------------------------------------------------------------
    def exists(self):
        return self.name in list_tables(self.db)

    @property
    def table(self):
        if self._table is None:
            if not self.exists():
                raise FileNotFoundError(
                    f"No embeddings table {self.name!r} in {self.uri}. Run compute_embeddings "
                    "(or the 'Compute embeddings' operator) first.")
            self._table = self.db.open_table(self.name)
        return self._table

    def create(self, dim):
        if self.exists():
            tbl = self.table
            have = tbl.schema.field("vector").type.list_size
            if have != dim:
                raise ValueError(f"Table {self.name} holds {have}-d vectors, not {dim}-d; "
                                 "delete the run or use another model key")
            return tbl
        self._table = self.db.create_table(self.name, schema=schema(dim))
        return self._table

    def drop(self):
        if self.exists():
            self.db.drop_table(self.name)
        self._table = None

    @property
    def dim(self):
        return self.table.schema.field("vector").type.list_size

    def count(self):
        return self.table.count_rows() if self.exists() else 0

    # -- reads -----------------------------------------------------------------------------
    def read(self, columns):
        """All rows, selected columns, as a pyarrow Table."""
        if not self.exists():
            return pa.table({c: pa.array([], pa.string()) for c in columns})
        return self.table.search().select(list(columns)).limit(None).to_arrow()

    def fingerprints(self):
        """``{id: (fingerprint, content_hash)}`` for every row."""
        t = self.read(["id", "fingerprint", "content_hash"])
        return dict(zip(t.column("id").to_pylist(),
                        zip(t.column("fingerprint").to_pylist(),
                            t.column("content_hash").to_pylist())))

    def iter_batches(self, columns, batch_size=65536):
        """Rows in record batches, streamed by LanceDB's own reader (the peak is a few batches,
        not the table)."""
        if not self.exists():
            return
        q = self.table.search().select(list(columns)).limit(None)
        try:
            reader = q.to_batches(batch_size)
        except (AttributeError, TypeError, NotImplementedError):  # a client without streaming
            yield from q.to_arrow().to_batches(max_chunksize=batch_size)
            return
        yield from reader

    def vectors(self, ids=None, extra=(), dtype=np.float32, mmap_dir=None):
        """``(ids, vectors (N, D), extra columns dict)``, in the order of ``ids`` if given (ids
        without a row are left out). Streamed batch by batch into one preallocated array of
        ``dtype`` (float16 halves the memory of a million-row read), so the peak is the result
        plus one batch.

        ``mmap_dir``: the array is a memory-mapped file in this folder instead of process memory
        (ten million 512-d float16 vectors are 10 GB: the operating system pages them in and out
        as the analyses read them). The file is unlinked at once where the system allows it, so
        nothing is left behind, whatever happens to the process."""
        cols = ["id", "vector", *extra]
        dim = self.dim                           # FileNotFoundError (recompute hint) if no table
        if ids is not None:                     # rows land directly at their place in ``ids``
            import pyarrow.compute as pc

            ids = list(ids)
            want = pa.array(ids, pa.string())
            out = _alloc((len(ids), dim), dtype, mmap_dir)
            found = np.zeros(len(ids), bool)
            ext_at = {c: np.full(len(ids), None, object) for c in extra}
            for b in self.iter_batches(cols):
                pos = pc.index_in(b.column(b.schema.get_field_index("id")), value_set=want)
                pos = pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
                keep = np.flatnonzero(pos >= 0)
                if not len(keep):
                    continue
                vec = _batch_vectors(b, dim)
                if len(keep) == len(pos):
                    out[pos] = vec
                else:
                    out[pos[keep]] = vec[keep]
                found[pos[keep]] = True
                for c in extra:
                    col = _objects(b.column(b.schema.get_field_index(c)).to_pylist())
                    ext_at[c][pos[keep]] = col[keep]
            if found.all():
                return ids, out, {c: v.tolist() for c, v in ext_at.items()}
            sel = np.flatnonzero(found)
            for b0 in range(0, len(sel), 65536):     # compacted in place: no second copy
                chunk = sel[b0:b0 + 65536]
                out[b0:b0 + len(chunk)] = out[chunk]
            return ([ids[j] for j in sel], out[:len(sel)],
                    {c: v[sel].tolist() for c, v in ext_at.items()})
        n_rows = self.count()
        out = _alloc((n_rows, dim), dtype, mmap_dir)
        got_ids, ext = [], {c: [] for c in extra}
        m = 0
        for b in self.iter_batches(cols):
            bid = b.column(b.schema.get_field_index("id")).to_pylist()
            if m + len(bid) > len(out):         # rows added while reading
                out = np.concatenate([out, np.empty((m + len(bid) - len(out), dim), dtype)])
            out[m:m + len(bid)] = _batch_vectors(b, dim)
            got_ids += bid
            for c in extra:
                ext[c] += b.column(b.schema.get_field_index(c)).to_pylist()
            m += len(bid)
        return got_ids, out[:m], ext

    # -- writes ----------------------------------------------------------------------------
    def _arrow(self, rows):
        """A dict of columns (``id`` and ``vector`` required) as a table of this schema."""
        n = len(rows["id"])
        dim = self.dim
        now = datetime.now(timezone.utc)
        data = {
            "id": rows["id"],
            "sample_id": rows.get("sample_id", rows["id"]),
            "filepath": rows.get("filepath", [None] * n),
            "fingerprint": rows.get("fingerprint", [None] * n),
            "content_hash": rows.get("content_hash", [None] * n),
            "width": rows.get("width", [None] * n),
            "height": rows.get("height", [None] * n),
            "box": rows.get("box", [None] * n),
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(np.ascontiguousarray(rows["vector"], dtype=np.float32).ravel()), dim),
            "created_at": [now] * n,
        }
        return pa.Table.from_pydict(data, schema=schema(dim))

    def upsert(self, rows):
        """Inserts or replaces rows (dict of columns) by ``id`` — one atomic LanceDB commit."""
        if not rows["id"]:
            return
        (self.table.merge_insert("id").when_matched_update_all()
         .when_not_matched_insert_all().execute(self._arrow(rows)))

    def append(self, rows):
        """Adds rows whose ids are not in the table yet (no id matching: a plain commit)."""
        if rows["id"]:
            self.table.add(self._arrow(rows))

    def set_fingerprints(self, ids, fingerprints):
        """Updates only the fingerprint of unchanged-content rows (file touched, same bytes)."""
        ids_, vecs, ext = self.vectors(ids, extra=["sample_id", "filepath", "content_hash",
                                                    "width", "height", "box"])
        fp = dict(zip(ids, fingerprints))
        self.upsert({"id": ids_, "vector": vecs, "fingerprint": [fp[i] for i in ids_], **ext})

    def delete(self, ids):
        ids = list(ids)
        for start in range(0, len(ids), 5000):
            self.table.delete(cfg.sql_in("id", ids[start:start + 5000]))

    #: compact once this many small fragments have piled up (each commit adds one or a few)
    COMPACT_MIN_SMALL_FRAGMENTS = 64

    def compact(self, min_small_fragments: int | None = None) -> bool:
        """Merges small fragments (and drops versions older than an hour) once
        ``min_small_fragments`` of them have piled up. LanceDB's compaction rewrites every row
        of the small fragments, so doing it after each small addition would rewrite the table
        each time (measured at 1M rows: 38 s to add 1 %, against 5 s without); below the
        threshold the new rows stay in their own fragments (searches read them all the same).
        Returns whether it compacted."""
        from datetime import timedelta

        need = self.COMPACT_MIN_SMALL_FRAGMENTS if min_small_fragments is None \
            else min_small_fragments
        try:
            frags = (self.table.stats() or {}).get("fragment_stats") or {}
            if int(frags.get("num_small_fragments", need)) < need:
                return False
            self.table.optimize(cleanup_older_than=timedelta(hours=1))
            return True
        except Exception:  # noqa: BLE001 - compaction is an optimisation, never fatal
            return False

    # -- search ----------------------------------------------------------------------------
    def has_index(self):
        try:
            return any("vector" in (getattr(ix, "columns", None) or []) for ix in self.table.list_indices())
        except Exception:  # noqa: BLE001
            return False

    def ensure_index(self, min_rows=None):
        """Builds LanceDB's IVF-PQ index (cosine) once the table has ``min_rows`` rows."""
        min_rows = cfg.ANN_INDEX_MIN_ROWS if min_rows is None else min_rows
        n = self.count()
        if n < max(min_rows, 256) or self.has_index():
            return False
        from lancedb.index import IvfPq

        dim = self.dim
        sub = next(s for s in (dim // 8, dim // 4, dim // 2, dim, 1) if s and dim % s == 0)
        self.table.create_index("vector", config=IvfPq(
            distance_type="cosine", num_partitions=max(1, int(np.sqrt(n))), num_sub_vectors=sub))
        return True

    def search(self, vector, k=50, nprobes=32, refine_factor=10):
        """ANN (or flat, when there is no index) cosine search → ``[(id, distance)]``."""
        q = (self.table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
             .distance_type("cosine").limit(int(k)).select(["id"]))
        if self.has_index():
            q = q.nprobes(nprobes).refine_factor(refine_factor)
        t = q.to_arrow()
        return list(zip(t.column("id").to_pylist(), t.column("_distance").to_pylist()))


class PixelSignatures:
    """The duplicate check's per-image signatures for one vectors table, in a LanceDB table of
    their own (``<vectors table>__dupsig``): the full grey thumbnail (normalised, float16) and
    the keep-rule statistics of every image the last analysis decoded. An incremental analysis
    compares new images with earlier ones from these instead of decoding the earlier images.
    Rows carry the file's content hash: a row whose file changed since is not used."""

    SUFFIX = "__dupsig"

    def __init__(self, vectors_table, uri=None):
        self.name = vectors_table + self.SUFFIX
        self.uri = cfg.lancedb_uri(uri)
        self.db = connect(self.uri)

    @staticmethod
    def _schema(dim):
        return pa.schema([
            pa.field("id", pa.string(), nullable=False),
            pa.field("content_hash", pa.string()),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("sharpness", pa.float32()),
            pa.field("signature", pa.list_(pa.float16(), int(dim))),
        ])

    def write(self, ids, content_hashes, signatures, stats, replace=False):
        """Rows for ``ids``: ``signatures`` (n, d) float16, ``stats`` a list of dicts (width,
        height, sharpness). ``replace`` rewrites the table (a full run), else rows are
        inserted or replaced by id (one LanceDB commit either way)."""
        sig = np.ascontiguousarray(signatures, np.float16)
        if not len(ids):
            if replace and self.name in list_tables(self.db):
                self.db.drop_table(self.name)
            return
        tbl = pa.Table.from_pydict({
            "id": list(ids), "content_hash": list(content_hashes),
            "width": [int(st["width"]) for st in stats],
            "height": [int(st["height"]) for st in stats],
            "sharpness": [float(st["sharpness"]) for st in stats],
            "signature": pa.FixedSizeListArray.from_arrays(pa.array(sig.ravel()), sig.shape[1]),
        }, schema=self._schema(sig.shape[1]))
        exists = self.name in list_tables(self.db)
        if replace or not exists:   # "overwrite" of a missing table makes Lance warn
            self.db.create_table(self.name, data=tbl, mode="overwrite" if exists else "create")
        else:
            (self.db.open_table(self.name).merge_insert("id").when_matched_update_all()
             .when_not_matched_insert_all().execute(tbl))

    def read(self, ids, content_hashes=None):
        """``{id: (signature (d,) float16, stats dict)}`` for the ``ids`` that have a row (and,
        given ``content_hashes``, the same content hash)."""
        if not len(ids) or self.name not in list_tables(self.db):
            return {}
        tbl = self.db.open_table(self.name)
        all_ids = tbl.search().select(["id"]).limit(None).to_arrow().column("id").to_pylist()
        at = {i: r for r, i in enumerate(all_ids)}
        want = [i for i in ids if i in at]
        if not want:
            return {}
        got = tbl.take_offsets([at[i] for i in want]).to_arrow()
        dim = got.schema.field("signature").type.list_size
        sig = got.column("signature").combine_chunks().flatten().to_numpy(
            zero_copy_only=False).reshape(-1, dim)
        hashes = dict(zip(ids, content_hashes)) if content_hashes is not None else None
        out = {}
        for j, (i, h, w, ht, sh) in enumerate(zip(*(got.column(c).to_pylist() for c in (
                "id", "content_hash", "width", "height", "sharpness")))):
            if hashes is not None and hashes.get(i) and h != hashes[i]:
                continue
            out[i] = (sig[j], dict(width=w, height=ht, sharpness=sh))
        return out


def _objects(values):
    """A 1-d object array of ``values`` (lists stay lists: ``np.array`` would make a 2-d
    array of a list of boxes)."""
    out = np.empty(len(values), object)
    for j, v in enumerate(values):
        out[j] = v
    return out


#: a vector read larger than this share of the machine's memory goes to a memory-mapped file
MMAP_SHARE = 0.25


def mmap_dir_for(nbytes: int, uri: str | None = None):
    """Where a vector read of ``nbytes`` is memory-mapped (see :meth:`VectorStore.vectors`):
    ``None`` (in memory) up to :data:`MMAP_SHARE` of physical memory; above, a ``.vc_tmp``
    folder inside a local LanceDB folder (on disk, beside the data), or the system's temporary
    folder when LanceDB is remote."""
    import os
    import tempfile

    import psutil  # a dependency of fiftyone

    if nbytes <= MMAP_SHARE * psutil.virtual_memory().total:
        return None
    if uri and "://" not in str(uri):
        return os.path.join(str(uri), ".vc_tmp")
    return tempfile.gettempdir()


def _alloc(shape, dtype, mmap_dir=None):
    """An empty array: in memory, or a memory-mapped file in ``mmap_dir`` unlinked at once
    (its pages stay valid until the array is released; where the system refuses to unlink an
    open file, it is removed at exit)."""
    if mmap_dir is None:
        return np.empty(shape, dtype)
    import atexit
    import os
    import tempfile

    os.makedirs(mmap_dir, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="vc_vectors_", suffix=".npy", dir=mmap_dir)
    os.close(fd)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        os.unlink(path)
    except OSError:
        atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    return out


def _batch_vectors(batch, dim):
    """The ``vector`` column of a record batch as an (n, dim) float32 view."""
    vec = batch.column(batch.schema.get_field_index("vector"))
    return vec.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)


def drop_dataset_tables(dataset, uri=None):
    """Drops every table that belongs to ``dataset``; returns their names."""
    db = connect(uri)
    prefix = f"vc_{dataset._doc.id}__"
    names = [n for n in list_tables(db) if n.startswith(prefix)]
    for n in names:
        db.drop_table(n)
    return names


