"""ECG -> echo studies: the search behind `e2r search` and the notebook API.

A `Searcher` is bound to one collection; it finds the model bundle the collection was built with
(from the collection's metadata), so a search never needs `--model` and can never mix models. It
encodes ECGs with the bundle's ECG encoder as `e2r.bundle.load_ecg_encoder` gives it: the ONNX
graph on ONNX Runtime when the bundle has one (torch is then never imported), else torch.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import numpy as np

from e2r.errors import BundleError, E2RError, StoreError
from e2r.phenotypes import LABEL_FIELDS, LVEF_CLASSES, NUMERIC_FIELDS
from e2r.util import unexpected_read_error

log = logging.getLogger(__name__)

#: Payload fields shown for each neighbour, in table order.
SHOWN_PHENOTYPES = ("lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "lv_mass", "la_volume", "rv_diameter")
# What the store sends back per hit: the neighbours' shown fields, and the voters' vote inputs
# (e2r.metrics.knn.label_arrays); never source_paths or anything else a result does not show.
_NEIGHBOUR_FIELDS = ("study_uid", "study_date", "views", "n_videos", *NUMERIC_FIELDS, "rhythm", *LABEL_FIELDS)
_VOTER_FIELDS = ("lvef", "lvh", "ivsd", "lvpwd")
_HIT_FIELDS = tuple(dict.fromkeys((*_NEIGHBOUR_FIELDS, *_VOTER_FIELDS)))  # one request serves both


def neighbours_and_voters(store: Any, collection: str, vector: np.ndarray, top_k: int = 10, k: int = 50,
                          filter: Any = None) -> tuple[list, list]:
    """A search's store step: the top_k nearest studies passing `filter` (Hits with the fields a
    result shows) and the k nearest labelled ones, the voters (with the keys a vote reads).

    One request for the max(top_k, k) nearest usually serves both: the labelled studies among
    them, in order, are the k nearest labelled ones as soon as there are k of them (in an archive
    whose studies all carry an LVEF, always), and one graph walk costs less than two, even with
    every field carried for all k hits (bench/probe_store_step.py). Only when fewer are labelled
    does a second request ask for the labelled studies alone.
    """
    from e2r.store import Condition, Filter, SearchRequest

    reach = max(top_k, k)
    found = store.search_batch(collection, vector, [SearchRequest(reach, filter, _HIT_FIELDS)])[0]
    # "Labelled" = carries an LVEF class; the schema leaves unknown fields out of the payload.
    labelled = [h for h in found if h.payload.get("lvef_class") in LVEF_CLASSES]
    if len(labelled) < k and len(found) == reach:  # fewer than `reach` hits: nothing else passes
        labelled_filter = Filter(must=(*(filter.must if filter else ()),
                                       Condition("lvef_class", "any", list(LVEF_CLASSES))))
        labelled = store.search_batch(collection, vector, [SearchRequest(k, labelled_filter, _VOTER_FIELDS)])[0]
    return found[:top_k], labelled[:k]


@dataclass(frozen=True)
class Neighbour:
    """One echo study returned for an ECG."""

    rank: int
    similarity: float
    study_uid: str
    study_date: Optional[str]
    views: tuple[str, ...]
    n_videos: int
    phenotypes: dict[str, Any]


@dataclass(frozen=True)
class SearchResult:
    """Everything `e2r search` reports for one ECG (`to_dict()` is the documented JSON)."""

    ecg: dict[str, Any]
    neighbours: tuple[Neighbour, ...]
    estimate: dict[str, Any]
    collection: str
    model_hash: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ecg": self.ecg,
            "collection": self.collection,
            "model_hash": self.model_hash,
            "neighbours": [asdict(n) | {"views": list(n.views)} for n in self.neighbours],
            "estimate": self.estimate,
            "notes": list(self.notes),
            "timings_ms": self.timings_ms,
        }


class Searcher:
    """Searches one collection of an open store with the model bundle the collection records."""

    def __init__(self, store: Any, collection: str, model: Any = None):
        """`model` (an ECG encoder from `e2r.bundle.load_ecg_encoder`, or a LoadedModel) may be given
        to skip loading; it must match the collection."""
        from e2r.bundle import load_ecg_encoder

        self.store = store
        self.collection = collection
        if not store.collection_exists(collection):
            names = ", ".join(store.list_collections()) or "none"
            raise StoreError(
                f"collection {collection!r} does not exist (collections: {names}); "
                "create it with `e2r index ARCHIVE --model MODEL_DIR`"
            )
        meta = store.get_metadata(collection)
        self.model_hash = meta.get("model_hash")
        if model is None:
            model_path = meta.get("model_path")
            if not model_path or not Path(model_path).is_dir():
                raise BundleError(
                    f"collection {collection!r} was built with model {self.model_hash} at {model_path}, "
                    "which is not there any more; restore that bundle or re-index with a model you have"
                )
            model = load_ecg_encoder(model_path)
        if meta.get("echo_tower_hash") != model.echo_tower_hash:
            raise BundleError(
                f"model bundle {model.path} is aligned to echo tower {model.echo_tower_hash} but collection "
                f"{collection!r} was built with tower {meta.get('echo_tower_hash')}; search with the model "
                "the collection was built with"
            )
        if model.hash != self.model_hash:
            ecg_input, built_with = model.preset.ecg_preprocess.describe(), meta.get("ecg_preprocess")
            differs = f" (ECG input {built_with}, the bundle's {ecg_input})" if built_with not in (None, ecg_input) else ""
            raise BundleError(
                f"model bundle {model.path} has hash {model.hash} but collection {collection!r} was built "
                f"with {self.model_hash}{differs}; search with the model the collection was built with"
            )
        self.loaded = model
        # Searches may run in several threads (e2r serve). ONNX Runtime runs concurrent calls; a
        # torch encoder runs one batch at a time (its intra-op threads take every core already).
        self._encoding = threading.Lock() if getattr(model, "backend", "torch") == "torch" else contextlib.nullcontext()

    # -- encoding ---------------------------------------------------------------------------
    def _prepare(self, path: str | Path) -> tuple[Any, dict[str, Any]]:
        """Read and preprocess one ECG with the bundle's settings; (PreprocessedECG, ECG summary)."""
        from e2r.ecg import read_for_model

        record, pre = read_for_model(path, self.loaded.preset.ecg_preprocess)
        info = {"path": str(path), "fs": record.fs, "duration_s": round(record.duration_s, 3),
                "derived_leads": list(record.derived), "notes": list(pre.notes)}  # notes hold reader warnings
        return pre, info

    def encode(self, ecg_paths: list[str | Path]) -> tuple[np.ndarray, list[dict[str, Any]], float]:
        """Read, preprocess and encode ECGs; returns (embeddings (B, D), ECG summaries, read ms)."""
        from e2r.encode import encode_ecg

        t0 = time.perf_counter()
        prepared, infos = zip(*(self._prepare(path) for path in ecg_paths))
        t1 = time.perf_counter()
        with self._encoding:
            emb = encode_ecg(self.loaded, list(prepared))
        return emb, list(infos), (t1 - t0) * 1000

    # -- one query ------------------------------------------------------------------------------
    def search(
        self,
        ecg_path: str | Path,
        top_k: int = 10,
        k: int = 50,
        filter: Any = None,
        weighting: str = "softmax",
    ) -> SearchResult:
        """The top_k most similar studies and the kNN phenotype estimate from k labelled ones."""
        t0 = time.perf_counter()
        emb, infos, read_ms = self.encode([ecg_path])
        t1 = time.perf_counter()
        return self._query(emb[0], infos[0], top_k, k, filter, weighting,
                           {"read_preprocess": read_ms, "encode": (t1 - t0) * 1000 - read_ms})

    def search_many(
        self,
        ecg_paths: Iterable[str | Path],
        top_k: int = 10,
        k: int = 50,
        filter: Any = None,
        batch_size: int = 64,
        weighting: str = "softmax",
    ) -> Iterator[tuple[str, Optional[SearchResult], Optional[str]]]:
        """Yield (path, result, error) per ECG; unreadable records give an error, never stop the run.

        A reader failure e2r did not name (a bug: every bad input should be an E2RError) is
        reported as that file's error and logged with its traceback, and the batch goes on.
        """
        from e2r.encode import encode_ecg

        paths = [str(p) for p in ecg_paths]
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            ok_paths, prepared, infos = [], [], []
            for path in chunk:
                try:
                    pre, info = self._prepare(path)
                except E2RError as err:
                    yield path, None, str(err)
                    continue
                except Exception as err:  # noqa: BLE001  (reported per file, with the traceback in the log)
                    log.warning("%s: unexpected error while reading", path, exc_info=True)
                    yield path, None, unexpected_read_error(path, err)
                    continue
                ok_paths.append(path)
                prepared.append(pre)
                infos.append(info)
            if not prepared:
                continue
            with self._encoding:
                emb = encode_ecg(self.loaded, prepared)
            for path, vector, info in zip(ok_paths, emb, infos):
                yield path, self._query(vector, info, top_k, k, filter, weighting, {}), None

    def _query(self, vector: np.ndarray, info: dict[str, Any], top_k: int, k: int, filter: Any,
               weighting: str, timings: dict[str, float]) -> SearchResult:
        from e2r.metrics.knn import knn_estimate

        t0 = time.perf_counter()
        hits, labelled = neighbours_and_voters(self.store, self.collection, vector, top_k, k, filter)
        if not hits and filter is None:
            # Checked here rather than with count(), which costs a second at 100k studies.
            raise StoreError(f"collection {self.collection!r} is empty; index an archive into it with `e2r index`")
        t1 = time.perf_counter()
        notes = [] if hits else ["no study matches the filter"]
        if len(labelled) < k:
            notes.append(f"only {len(labelled)} labelled studies match; the estimate uses {len(labelled)} instead of k={k}")
        estimate = knn_estimate(
            np.array([h.score for h in labelled], dtype=np.float64),
            [h.payload for h in labelled], k=k, weighting=weighting,
        ).to_dict() if labelled else {"n_neighbours": 0, "notes": ["no labelled studies in the collection"]}
        t2 = time.perf_counter()
        neighbours = tuple(
            Neighbour(
                rank=i + 1,
                similarity=float(h.score),
                study_uid=h.payload.get("study_uid", h.id),
                study_date=h.payload.get("study_date"),
                views=tuple(h.payload.get("views") or ()),
                n_videos=int(h.payload.get("n_videos") or 0),
                phenotypes={f: h.payload.get(f) for f in (*NUMERIC_FIELDS, "rhythm", *LABEL_FIELDS)},
            )
            for i, h in enumerate(hits)
        )
        timings = {**timings, "store_query": (t1 - t0) * 1000, "knn": (t2 - t1) * 1000}
        return SearchResult(ecg=info, neighbours=neighbours, estimate=estimate, collection=self.collection,
                            model_hash=self.model_hash, timings_ms={k_: round(v, 3) for k_, v in timings.items()},
                            notes=tuple(notes))
