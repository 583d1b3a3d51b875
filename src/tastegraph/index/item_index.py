"""ItemIndex: FAISS inner-product search over item embeddings, with exact filters.

Small catalogs get an exact `IndexFlatIP`; large ones an `IndexHNSWFlat`. FAISS ids are
row numbers (0..N-1, in insertion order); `ids[row]` is the item id. Filters become a
bitmap passed to FAISS as an `IDSelectorBitmap`, so every result passes the filter. On an
HNSW index, a filter that leaves at most `exact_threshold` items is searched exactly over
those items; otherwise HNSW searches with a beam widened by (items / items passing), and
any query still short of k results is searched exactly. Either way a search returns
min(k, items passing) results.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from tastegraph import registry
from tastegraph.index.filters import FilterFields, PriceRange

log = logging.getLogger(__name__)
# faiss ships type stubs that lack SearchParametersHNSW and the keyword constructors of
# search parameters; calls that need them go through this untyped alias.
_faiss: Any = faiss

Kind = Literal["auto", "exact", "hnsw"]
Results = list[list[tuple[str, float]]]

FORMAT = "tastegraph-item-index/1"
# The item attribute used as the category filter; H&M items carry it (e.g. "Garment Upper body").
CATEGORY_KEY = "product_group"
# Catalogs below this many items get an exact index when kind="auto".
EXACT_THRESHOLD = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
# Item vectors must have this L2 norm, give or take the tolerance.
NORM_TOLERANCE = 1e-3
_ADD_CHUNK = 65_536
# FAISS scans without BLAS below this many queries (its distance_compute_blas_threshold).
_FEW_QUERIES = 20


class ItemIndex:
    """Nearest items by inner product (cosine, as item vectors are L2-normalised)."""

    def __init__(
        self,
        index: Any,
        ids: list[str],
        fields: FilterFields,
        *,
        ef_search: int = HNSW_EF_SEARCH,
        exact_threshold: int = EXACT_THRESHOLD,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Wrap a FAISS index whose row i holds item ids[i]; use `build` or `load`."""
        if not index.ntotal == len(ids) == len(fields):
            raise ValueError(
                f"index holds {index.ntotal} vectors, but {len(ids)} ids and "
                f"{len(fields)} filter rows were given"
            )
        self.index = index
        self.kind: Literal["exact", "hnsw"] = "hnsw" if _is_hnsw(index) else "exact"
        self.fields = fields
        self.ef_search = ef_search  # HNSW beam width per search; larger is slower, more exact
        # Below this many items, kind="auto" builds an exact index and filters search exactly.
        self.exact_threshold = exact_threshold
        self.metadata: dict[str, Any] = dict(metadata or {})  # written into the manifest
        self.version: str | None = None  # the published version folder's name, once loaded
        self.read_only = False  # True when loaded memory-mapped: FAISS cannot add to it
        self._ids = list(ids)
        self._rows = {item_id: row for row, item_id in enumerate(self._ids)}
        if len(self._rows) != len(self._ids):
            raise ValueError(f"duplicate item ids: {_duplicates(self._ids)}")
        # The exact index over the same vectors: the index itself, or HNSW's flat storage.
        self._flat: Any = _faiss.downcast_index(index.storage) if self.kind == "hnsw" else index

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        vectors: np.ndarray,
        categories: Sequence[str | None] | None = None,
        prices: Sequence[float | None] | np.ndarray | None = None,
        *,
        kind: Kind = "auto",
        exact_threshold: int = EXACT_THRESHOLD,
        ef_search: int = HNSW_EF_SEARCH,
        hnsw_m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        metadata: dict[str, Any] | None = None,
    ) -> ItemIndex:
        """Index (N, d) float32 L2-normalised vectors for items `ids`.

        kind="auto" builds an exact index below `exact_threshold` items and HNSW above.
        """
        if kind not in ("auto", "exact", "hnsw"):
            raise ValueError(f"kind must be 'auto', 'exact' or 'hnsw', got {kind!r}")
        _check_matrix(vectors, "vectors", None)
        dim = vectors.shape[1]
        if kind == "auto":
            kind = "exact" if len(vectors) < exact_threshold else "hnsw"
        index: Any
        if kind == "exact":
            index = faiss.IndexFlatIP(dim)
        else:
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
            metadata = (metadata or {}) | {"hnsw_m": hnsw_m, "ef_construction": ef_construction}
        item_index = cls(
            index,
            [],
            FilterFields.empty(),
            ef_search=ef_search,
            exact_threshold=exact_threshold,
            metadata=metadata,
        )
        start = time.perf_counter()
        item_index.add(ids, vectors, categories, prices)
        log.info(
            "built a %s index of %d x %d in %.1f s",
            kind,
            len(item_index),
            dim,
            time.perf_counter() - start,
        )
        return item_index

    # -- lookups ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ids(self) -> list[str]:
        """Item ids in row order (a copy)."""
        return list(self._ids)

    def row(self, item_id: str) -> int:
        if item_id not in self._rows:
            raise KeyError(f"item {item_id!r} is not in the index")
        return self._rows[item_id]

    def vector(self, item_id: str) -> np.ndarray:
        """The item's stored vector, (d,) float32."""
        vector: np.ndarray = self.index.reconstruct(self.row(item_id))
        return vector

    def category(self, item_id: str) -> str | None:
        return self.fields.category(self.row(item_id))

    def price(self, item_id: str) -> float | None:
        return self.fields.price(self.row(item_id))

    # -- writes ----------------------------------------------------------------------------

    def copy(self) -> ItemIndex:
        """An independent copy: add to it while readers keep searching this one."""
        clone = ItemIndex(
            faiss.clone_index(self.index),
            self._ids,
            self.fields,
            ef_search=self.ef_search,
            exact_threshold=self.exact_threshold,
            metadata=self.metadata,
        )
        clone.version = self.version
        return clone

    def add(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        categories: Sequence[str | None] | None = None,
        prices: Sequence[float | None] | np.ndarray | None = None,
    ) -> None:
        """Append new items. An id already indexed raises ValueError: the index is
        append-only, so an item whose vector changed needs a rebuild (`build_index`)."""
        if self.read_only:
            raise ValueError("this index was loaded memory-mapped; load it with mmap=False to add")
        ids = list(ids)
        _check_matrix(vectors, "vectors", self.dim)
        if len(ids) != len(vectors):
            raise ValueError(f"got {len(ids)} ids for {len(vectors)} vectors")
        if not all(isinstance(item_id, str) for item_id in ids):
            raise TypeError("item ids must be str")
        present = [item_id for item_id in ids if item_id in self._rows]
        if present or len(set(ids)) != len(ids):
            raise ValueError(
                f"ids already indexed or repeated: {(present or _duplicates(ids))[:5]}; "
                "the index is append-only, rebuild it to change an item's vector"
            )
        new_fields = FilterFields.from_values(len(ids), categories, prices)
        for start in range(0, len(vectors), _ADD_CHUNK):
            _check_normalised(vectors[start : start + _ADD_CHUNK], start)
        for start in range(0, len(vectors), _ADD_CHUNK):
            chunk = vectors[start : start + _ADD_CHUNK]  # (c, d)
            self.index.add(chunk)
            if len(vectors) > _ADD_CHUNK:
                log.info("indexed %d / %d items", start + len(chunk), len(vectors))
        self.fields = self.fields.extend(new_fields)
        for item_id in ids:
            self._rows[item_id] = len(self._ids)
            self._ids.append(item_id)

    def replace_fields(
        self,
        categories: Sequence[str | None] | None,
        prices: Sequence[float | None] | np.ndarray | None,
    ) -> None:
        """Replace every item's category and price, given in row order (see `ids`)."""
        self.fields = FilterFields.from_values(len(self), categories, prices)

    # -- search ----------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        categories: Collection[str] | None = None,
        price_range: PriceRange | None = None,
        exclude: Collection[str] | None = None,
    ) -> Results:
        """The k best items for each query, best first, as [(item id, score), ...].

        queries: (d,) or (B, d) float32, C-contiguous; the result has one list per query
        (a (d,) query gives a list of one list). Filters, all optional and combined:
        categories: only items whose category is one of these;
        price_range: (low, high), inclusive, None for no bound; items without a price fail;
        exclude: item ids never returned (e.g. already bought or hidden); unknown ids are ignored.
        Each list holds min(k, items passing the filters) results.
        """
        scores, rows = self.search_rows(
            queries, k, categories=categories, price_range=price_range, exclude=exclude
        )
        ids = self._ids
        return [
            [(ids[r], float(s)) for r, s in zip(row, score, strict=True) if r >= 0]
            for row, score in zip(rows.tolist(), scores.tolist(), strict=True)
        ]

    def search_rows(
        self,
        queries: np.ndarray,
        k: int,
        *,
        categories: Collection[str] | None = None,
        price_range: PriceRange | None = None,
        exclude: Collection[str] | None = None,
        within: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like `search`, FAISS-style: scores (B, k') float32 and rows (B, k') int64, where
        k' = min(k, items passing) and `ids[row]` is the item id. `within`, an (N,) bool
        row mask, is one more filter: only rows where it is True pass."""
        queries = _as_queries(queries, self.dim)  # (B, d)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be an integer of at least 1, got {k!r}")
        mask = self._mask(categories, price_range, exclude)  # (N,) bool or None
        if within is not None:
            if within.shape != (len(self),) or within.dtype != bool:
                raise ValueError(f"within must be a ({len(self)},) bool mask, got {within.shape}")
            mask = within if mask is None else mask & within
        passing = len(self) if mask is None else int(np.count_nonzero(mask))
        k = min(int(k), passing)
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.kind == "exact" and len(queries) < _FEW_QUERIES:
            return self._exact_few(queries, k, mask)
        bitmap = None if mask is None else np.packbits(mask, bitorder="little")  # (ceil(N/8),)
        selector = None if bitmap is None else _faiss.IDSelectorBitmap(len(self), _ptr(bitmap))
        exact = None if selector is None else _faiss.SearchParameters(sel=selector)
        if self.kind == "exact" or (mask is not None and passing <= self.exact_threshold):
            return _search(self._flat, queries, k, exact)
        # Widen the beam so that it holds about max(ef_search, k) passing items; as more than
        # exact_threshold items pass, it widens at most len(self) / exact_threshold times.
        params = _faiss.SearchParametersHNSW()
        params.efSearch = math.ceil(max(self.ef_search, k) * len(self) / passing)
        if selector is not None:
            params.sel = selector
        scores, rows = _search(self.index, queries, k, params)
        short = (rows < 0).any(axis=1)  # (B,) bool
        if short.any():
            log.debug("%d HNSW queries came back short of k; searching exactly", short.sum())
            scores[short], rows[short] = _search(self._flat, queries[short], k, exact)
        return scores, rows

    def _exact_few(
        self, queries: np.ndarray, k: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact search for a few queries as one matrix product over FAISS's own vectors
        (a view, not a copy): several times faster than FAISS's per-query scan, which it
        uses below _FEW_QUERIES queries."""
        vectors = faiss.rev_swig_ptr(self._flat.get_xb(), len(self) * self.dim)
        scores = queries @ vectors.reshape(len(self), self.dim).T  # (B, N)
        if mask is not None:
            scores[:, ~mask] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (B, k), unordered
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)  # best first; ties by row
        rows = np.take_along_axis(top, order, axis=1).astype(np.int64)
        return np.take_along_axis(top_scores, order, axis=1), rows

    def similar(
        self,
        item_id: str,
        k: int,
        *,
        categories: Collection[str] | None = None,
        price_range: PriceRange | None = None,
        exclude: Collection[str] | None = None,
    ) -> list[tuple[str, float]]:
        """The k items nearest to an indexed item, itself excluded (more-like-this)."""
        if exclude is not None and isinstance(exclude, str):
            raise TypeError(f"exclude must be a collection of item ids, not the str {exclude!r}")
        skip = {item_id} | set(exclude or ())
        return self.search(
            self.vector(item_id), k, categories=categories, price_range=price_range, exclude=skip
        )[0]

    def _mask(
        self,
        categories: Collection[str] | None,
        price_range: PriceRange | None,
        exclude: Collection[str] | None,
    ) -> np.ndarray | None:
        mask = self.fields.mask(categories, price_range)  # (N,) bool or None
        if exclude is None:
            return mask
        if isinstance(exclude, str):
            raise TypeError(f"exclude must be a collection of item ids, not the str {exclude!r}")
        rows = [self._rows[item_id] for item_id in exclude if item_id in self._rows]
        if not rows:
            return mask
        if mask is None:
            mask = np.ones(len(self), bool)
        mask[rows] = False
        return mask

    # -- files -----------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write index.faiss, ids.json, the filter fields and manifest.json into `folder`.

        This writes in place; `build.publish_index` writes a new version atomically.
        """
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(folder / "index.faiss"))
        (folder / "ids.json").write_text(json.dumps(self._ids))
        (folder / "categories.json").write_text(json.dumps(self.fields.names))
        np.save(folder / "category_codes.npy", self.fields.codes)
        np.save(folder / "prices.npy", self.fields.prices)
        manifest = self.metadata | {
            "format": FORMAT,
            "kind": self.kind,
            "count": len(self),
            "dim": self.dim,
            "ef_search": self.ef_search,
            "exact_threshold": self.exact_threshold,
            "created_at": time.time(),
            "faiss_version": faiss.__version__,
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = False) -> ItemIndex:
        """Read an index written by `save`.

        mmap=True maps index.faiss instead of reading it: fast to open, shared between
        processes through the page cache, but read-only (`add` raises).
        """
        manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{folder} holds format {manifest.get('format')!r}, not {FORMAT}")
        flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0
        index = faiss.read_index(str(folder / "index.faiss"), flags)
        fields = FilterFields(
            json.loads((folder / "categories.json").read_text()),
            np.load(folder / "category_codes.npy", allow_pickle=False),
            np.load(folder / "prices.npy", allow_pickle=False),
        )
        ids = json.loads((folder / "ids.json").read_text())
        if index.d != manifest["dim"] or index.ntotal != manifest["count"]:
            raise ValueError(
                f"{folder}: index.faiss holds {index.ntotal} x {index.d}, "
                f"the manifest says {manifest['count']} x {manifest['dim']}"
            )
        core = {"format", "kind", "count", "dim", "ef_search", "exact_threshold"}
        item_index = cls(
            index,
            ids,
            fields,
            ef_search=manifest["ef_search"],
            exact_threshold=manifest["exact_threshold"],
            metadata={key: value for key, value in manifest.items() if key not in core},
        )
        item_index.version = folder.name
        item_index.read_only = mmap
        return item_index


def _is_hnsw(index: Any) -> bool:
    return isinstance(index, faiss.IndexHNSW)


def _ptr(array: np.ndarray) -> Any:
    """A raw pointer to `array` for FAISS; the caller keeps `array` alive while it is used."""
    return faiss.swig_ptr(array)


def _search(
    index: Any, queries: np.ndarray, k: int, params: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    scores, rows = index.search(queries, k, params=params)  # (B, k) float32, (B, k) int64
    return scores, rows


def _check_matrix(x: object, name: str, dim: int | None) -> None:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise TypeError(f"{name} must be float32, got {x.dtype}; use {name}.astype(np.float32)")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; pass np.ascontiguousarray({name})")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, d), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have dim {dim}, got shape {x.shape}")
    if x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one dimension, got shape {x.shape}")


def _check_normalised(vectors: np.ndarray, offset: int) -> None:
    norms = np.sqrt(np.einsum("nd,nd->n", vectors, vectors))  # (N,)
    bad = np.flatnonzero(~(np.abs(norms - 1.0) <= NORM_TOLERANCE))  # NaN norms are bad too
    if len(bad):
        row = int(bad[0])
        raise ValueError(
            f"item vectors must be L2-normalised: row {offset + row} has norm {norms[row]:.4g}"
        )


def _as_queries(queries: object, dim: int) -> np.ndarray:
    """(d,) or (B, d) float32 → (B, d), with FAISS-style checks."""
    if not isinstance(queries, np.ndarray):
        raise TypeError(f"queries must be a numpy array, got {type(queries).__name__}")
    if queries.ndim == 1 and queries.flags.c_contiguous:
        queries = queries.reshape(1, -1)  # a view: no silent copy of a strided query
    if queries.ndim not in (1, 2):
        raise ValueError(f"queries must be (d,) or (B, d), got shape {queries.shape}")
    _check_matrix(queries, "queries", dim)
    if not np.isfinite(queries).all():
        raise ValueError("queries hold NaN or infinite values")
    return queries


def _duplicates(ids: Sequence[str]) -> list[str]:
    return sorted(item_id for item_id, count in Counter(ids).items() if count > 1)


def open_index(workdir: Path, *, mmap: bool = False) -> ItemIndex:
    """The current published index (memory-mapped and read-only with mmap=True)."""
    folder = registry.current(workdir, "index")
    if folder is None:
        raise FileNotFoundError(
            f"no item index in {registry.root(workdir, 'index')}; build one first "
            "(`tastegraph index`, or tastegraph.index.build.build_index)"
        )
    return ItemIndex.load(folder, mmap=mmap)
