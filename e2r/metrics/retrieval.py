"""Retrieval metrics: ECG queries against a gallery of echo studies (or the reverse), in arrays.

The caller supplies a similarity matrix `sim (Q, G)` and a boolean relevance matrix of the same
shape. The relevance rules of the evaluation protocol (../shared/SPEC.md), all here:

- `exact_relevance`: the paired study (or ECG);
- `phenotype_relevance`: e2r's conjunction, every RELEVANCE_FIELDS value within 0.5 SD at once;
- `per_phenotype_relevance`: the Echo2ECG paper's rule, one PER_PHENOTYPE_FIELDS value within
  0.5 SD (lvef, lvedv, lvesv, lvsv), a matrix (and a mAP) per phenotype;
- `wall_motion_relevance`: the same coronary territory, or the WMSI within 0.5 SD.

The echo -> ECG direction is the same call with both matrices transposed.

Ranking rule (deterministic): gallery items are ordered by descending similarity. Items with equal
similarity are ordered, by default (`ties="pessimistic"`), irrelevant before relevant and then by
gallery index, so a model that scores everything the same gets no credit from lucky ties;
`ties="index"` orders ties by gallery index alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

from e2r.errors import ConfigError, DataError
from e2r.phenotypes import PER_PHENOTYPE_FIELDS, RELEVANCE_FIELDS  # the default fields, re-exported

log = logging.getLogger(__name__)

TIE_RULES = ("pessimistic", "index")
# Elements of (block, G) processed at once; bounds the temporary memory to ~60 MB per block.
_BLOCK_ELEMENTS = 1 << 21


def similarity_matrix(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine similarity of every query row with every gallery row: (Q, D), (G, D) -> (Q, G) float32.

    Rows are L2-normalised here, so unnormalised embeddings are fine; an all-zero row has
    similarity 0 with everything.
    """
    q = _as_2d(queries, "queries").astype(np.float32, copy=False)
    g = _as_2d(gallery, "gallery").astype(np.float32, copy=False)
    if q.shape[1] != g.shape[1]:
        raise DataError(
            f"similarity_matrix: queries have dimension {q.shape[1]} but the gallery has {g.shape[1]}; "
            "embed both with the same model"
        )
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    return q @ g.T  # (Q, G)


def exact_relevance(query_keys: Sequence, gallery_keys: Sequence) -> np.ndarray:
    """bool (Q, G): gallery item j is relevant to query i when their keys (e.g. study UIDs) are equal."""
    q = np.asarray(query_keys)
    g = np.asarray(gallery_keys)
    if q.ndim != 1 or g.ndim != 1:
        raise DataError("exact_relevance: query_keys and gallery_keys must be 1-D sequences of keys")
    return q[:, None] == g[None, :]


def phenotype_relevance(
    query_phenos: Mapping[str, np.ndarray],
    gallery_phenos: Mapping[str, np.ndarray],
    fields: Sequence[str] | str = RELEVANCE_FIELDS,
    sd: Optional[Mapping[str, float]] = None,
    tol: float = 0.5,
) -> np.ndarray:
    """Phenotype-aware relevance, bool (Q, G).

    Gallery study j is relevant to query i when, for **every** field in `fields` (pass a single
    name, e.g. `"lvef"`, for one phenotype), |gallery[field][j] - query[field][i]| <= tol * SD[field].
    `query_phenos[field]` holds the phenotype of each query's paired study, (Q,); gallery arrays are
    (G,). SD[field] is `sd[field]` when given, else the population SD (ddof=0) of the gallery's
    finite values. A NaN on either side makes the pair not relevant. The query's own paired study,
    when it is in the gallery with all fields known, is always relevant.
    """
    names = (fields,) if isinstance(fields, str) else tuple(fields)
    if not names:
        raise ConfigError("phenotype_relevance: fields is empty; name at least one phenotype, e.g. 'lvef'")
    if not (np.isfinite(tol) and tol >= 0):
        raise ConfigError(f"phenotype_relevance: tol={tol} must be a finite number >= 0")
    qs, gs, widths = [], [], []
    for name in names:
        if name not in query_phenos or name not in gallery_phenos:
            raise DataError(f"phenotype_relevance: phenotype '{name}' is missing from the query or gallery phenotypes")
        q = np.asarray(query_phenos[name], dtype=np.float64)
        g = np.asarray(gallery_phenos[name], dtype=np.float64)
        if q.ndim != 1 or g.ndim != 1:
            raise DataError(f"phenotype_relevance: phenotype '{name}' must be 1-D arrays for queries and gallery")
        if sd is not None and name in sd:
            width = float(sd[name])
        else:
            finite = g[np.isfinite(g)]
            width = float(finite.std()) if finite.size else float("nan")
        if not np.isfinite(width) or width == 0:
            log.warning("phenotype_relevance: SD of '%s' is %s; only equal values can match", name, width)
        qs.append(q)
        gs.append(g)
        widths.append(tol * width)
    n_q, n_g = qs[0].size, gs[0].size
    if any(q.size != n_q for q in qs) or any(g.size != n_g for g in gs):
        raise DataError("phenotype_relevance: phenotype arrays of different lengths; give one value per study for every field")
    out = np.ones((n_q, n_g), dtype=bool)
    block = max(1, _BLOCK_ELEMENTS // max(n_g, 1))
    for a in range(0, n_q, block):
        b = min(a + block, n_q)
        for q, g, w in zip(qs, gs, widths):
            # NaN compares False, so missing phenotypes (or a NaN width) are never relevant.
            out[a:b] &= np.abs(g[None, :] - q[a:b, None]) <= w
    return out


def per_phenotype_relevance(
    query_phenos: Mapping[str, np.ndarray],
    gallery_phenos: Mapping[str, np.ndarray],
    fields: Sequence[str] = PER_PHENOTYPE_FIELDS,
    sd: Optional[Mapping[str, float]] = None,
    tol: float = 0.5,
) -> dict[str, np.ndarray]:
    """The Echo2ECG paper's relevance: {field: bool (Q, G)}, gallery study j relevant to query i
    when |gallery[field][j] - query[field][i]| <= tol * SD[field] for that one field
    (`phenotype_relevance` with one field each; lvsv = lvedv - lvesv comes from
    e2r.phenotypes.phenotype_arrays). SD, NaN and the paired study as in `phenotype_relevance`."""
    return {f: phenotype_relevance(query_phenos, gallery_phenos, f, sd=sd, tol=tol) for f in fields}


def wall_motion_relevance(
    query_wmsi: np.ndarray,
    gallery_wmsi: np.ndarray,
    query_territory: Sequence[Optional[str]],
    gallery_territory: Sequence[Optional[str]],
    sd: Optional[Mapping[str, float]] = None,
    tol: float = 0.5,
) -> np.ndarray:
    """Wall-motion-aware relevance, bool (Q, G): gallery study j is relevant to query i when both
    carry the same coronary territory (equal canonical strings, e.g. both `LAD`, both `none`;
    `LAD` and `LAD+RCA` differ), or |wmsi[j] - wmsi[i]| <= tol * SD["wmsi"] (`phenotype_relevance`
    on the one field). A missing territory (None) or WMSI (NaN) matches nothing on its side.
    """
    qt, gt = list(query_territory), list(gallery_territory)
    q = np.asarray(query_wmsi, dtype=np.float64)
    g = np.asarray(gallery_wmsi, dtype=np.float64)
    if q.ndim != 1 or g.ndim != 1 or len(qt) != q.size or len(gt) != g.size:
        raise DataError("wall_motion_relevance: give one WMSI and one territory per query and per gallery study")
    # territories as integer codes (-1: missing), so the (Q, G) comparison is numeric
    codes = {t: i for i, t in enumerate(sorted({t for t in qt + gt if t is not None}))}
    qc = np.array([codes.get(t, -1) for t in qt], dtype=np.int64)
    gc = np.array([codes.get(t, -1) for t in gt], dtype=np.int64)
    out = (qc[:, None] == gc[None, :]) & (qc[:, None] >= 0)
    if np.isfinite(q).any() and np.isfinite(g).any():
        out |= phenotype_relevance({"wmsi": q}, {"wmsi": g}, "wmsi", sd=sd, tol=tol)
    return out


@dataclass(frozen=True)
class RetrievalMetrics:
    """Retrieval figures over the queries that have at least one relevant gallery item.

    recall_at[k]: fraction of those queries with >= 1 relevant item in the top k (the hit rate;
    for exact pairing, one relevant item, this is the usual Recall@k). precision_at[k]: mean
    fraction of the top min(k, G) that is relevant. mean_ap: mean average precision. median_rank:
    median 1-based rank of the first relevant item. Queries without any relevant item are left
    out of every figure and counted in n_without_relevant.
    """

    recall_at: dict[int, float]
    precision_at: dict[int, float]
    mean_ap: float
    median_rank: float
    n_queries: int
    n_without_relevant: int
    gallery_size: int
    mean_relevant: float  # mean number of relevant gallery items per evaluated query
    ties: str
    # (Q,) 1-based rank of each query's first relevant item; 0 for queries without one.
    first_relevant_rank: np.ndarray = field(repr=False, compare=False)

    @property
    def n_evaluated(self) -> int:
        return self.n_queries - self.n_without_relevant

    def recall_curve(self, max_k: int) -> np.ndarray:
        """Recall@1..max_k as an array (max_k,), for Recall@K plots."""
        ranks = self.first_relevant_rank[self.first_relevant_rank > 0]
        if ranks.size == 0:
            return np.full(max_k, np.nan)
        return np.array([(ranks <= k).mean() for k in range(1, max_k + 1)])

    def to_dict(self) -> dict:
        """Flat dict with stable keys: recall@k, precision@k, map, median_rank, counts."""
        out: dict = {f"recall@{k}": v for k, v in self.recall_at.items()}
        out.update({f"precision@{k}": v for k, v in self.precision_at.items()})
        out.update(
            map=self.mean_ap,
            median_rank=self.median_rank,
            n_queries=self.n_queries,
            n_evaluated=self.n_evaluated,
            n_without_relevant=self.n_without_relevant,
            gallery_size=self.gallery_size,
            mean_relevant=self.mean_relevant,
        )
        return out


def retrieval_metrics(
    sim: np.ndarray,
    relevant: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    ties: str = "pessimistic",
    block_size: Optional[int] = None,
) -> RetrievalMetrics:
    """Recall@k, Precision@k, mAP and median first-relevant rank of a (Q, G) retrieval problem.

    Queries are processed in blocks of `block_size` rows (default: about 2M matrix elements per
    block), so only one block is ever sorted at a time; the result does not depend on the block
    size. k larger than the gallery is evaluated at k = G. See `RetrievalMetrics` for definitions
    and the module docstring for the tie rule.
    """
    sim = _as_2d(sim, "sim")
    relevant = np.asarray(relevant)
    if relevant.shape != sim.shape:
        raise DataError(f"retrieval_metrics: relevance shape {relevant.shape} does not match similarity shape {sim.shape}")
    if relevant.dtype != bool:
        raise DataError(f"retrieval_metrics: relevance must be a boolean matrix, got {relevant.dtype}")
    if ties not in TIE_RULES:
        raise ConfigError(f"retrieval_metrics: ties={ties!r} is not one of {', '.join(TIE_RULES)}")
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks):
        raise ConfigError(f"retrieval_metrics: ks={ks} must be positive integers")
    n_q, n_g = sim.shape
    if n_g == 0:
        raise DataError("retrieval_metrics: the gallery is empty; index or pass at least one gallery item")
    if block_size is None:
        block_size = max(1, _BLOCK_ELEMENTS // n_g)
    if block_size < 1:
        raise ConfigError(f"retrieval_metrics: block_size={block_size} must be >= 1")

    cut = {k: min(k, n_g) for k in ks}
    first = np.zeros(n_q, dtype=np.int64)
    ap = np.zeros(n_q)
    n_rel = np.zeros(n_q, dtype=np.int64)
    hits_at = {k: np.zeros(n_q, dtype=np.int64) for k in ks}
    for a in range(0, n_q, block_size):
        b = min(a + block_size, n_q)
        neg = -np.asarray(sim[a:b])  # ascending order of -sim is the ranking
        if not np.all(np.isfinite(neg)):
            raise DataError(f"retrieval_metrics: similarity rows {a}-{b - 1} hold NaN or inf; check the embeddings for NaN")
        neg_sorted = np.sort(neg, axis=1)  # values only: much cheaper than an argsort
        for i in range(b - a):
            ranks = _relevant_ranks(neg[i], neg_sorted[i], relevant[a + i], ties)
            if ranks.size == 0:
                continue
            n_rel[a + i] = ranks.size
            first[a + i] = ranks[0]
            ap[a + i] = float(np.mean(np.arange(1, ranks.size + 1) / ranks))
            for k in ks:
                hits_at[k][a + i] = np.searchsorted(ranks, cut[k], side="right")

    ok = n_rel > 0
    n_eval = int(ok.sum())
    if n_eval == 0:
        log.warning("retrieval_metrics: no query has a relevant gallery item; every figure is NaN")
        nan = float("nan")
        recall = {k: nan for k in ks}
        precision = {k: nan for k in ks}
        mean_ap = median_rank = mean_relevant = nan
    else:
        recall = {k: float((hits_at[k][ok] > 0).mean()) for k in ks}
        precision = {k: float((hits_at[k][ok] / cut[k]).mean()) for k in ks}
        mean_ap = float(ap[ok].mean())
        median_rank = float(np.median(first[ok]))
        mean_relevant = float(n_rel[ok].mean())
    return RetrievalMetrics(
        recall_at=recall,
        precision_at=precision,
        mean_ap=mean_ap,
        median_rank=median_rank,
        n_queries=n_q,
        n_without_relevant=n_q - n_eval,
        gallery_size=n_g,
        mean_relevant=mean_relevant,
        ties=ties,
        first_relevant_rank=first,
    )


def _relevant_ranks(neg: np.ndarray, neg_sorted: np.ndarray, rel: np.ndarray, ties: str) -> np.ndarray:
    """Ascending 1-based ranks of one query's relevant items; neg = -sim of the row (G,)."""
    cols = np.flatnonzero(rel)
    if cols.size == 0:
        return cols
    order = np.argsort(neg[cols], kind="stable")
    cols, v = cols[order], neg[cols][order]  # relevant items, best first
    ahead = np.searchsorted(neg_sorted, v, side="left")  # items scored strictly higher
    tied = np.searchsorted(neg_sorted, v, side="right") - ahead  # items with the same score
    if ties == "pessimistic":
        rel_ahead = np.searchsorted(v, v, side="left")  # relevant items scored strictly higher
        rel_tied = np.searchsorted(v, v, side="right") - rel_ahead
        # irrelevant ties go first, then the relevant ties fill the next places
        return ahead + (tied - rel_tied) + (np.arange(v.size) - rel_ahead) + 1
    if np.all(tied == 1):
        return ahead + 1
    # ties by gallery index: a full stable ranking of this row only
    ranked_rel = rel[np.argsort(neg, kind="stable")]
    return np.flatnonzero(ranked_rel) + 1


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{name} must be a 2-D array, got shape {arr.shape}")
    return arr
