"""One arm of the benchmark, in arrays: embeddings (or predictions) in, every metric out.

Nothing here trains, indexes or reads files, so each piece is tested on small synthetic arrays.

Retrieval (both directions, on the test split): ECG -> echo study with the gallery = every test
study in the index; echo study -> ECG with the queries = the test studies that have an ECG and the
gallery = the test ECGs. Relevance (the rules live in e2r.metrics.retrieval; widths are `tol` x the
cohort SD, `relevance_sd`): exact (the paired study / ECG); phenotype-aware (every field of
`relevance_fields` at once, results key `phenotype`); the Echo2ECG paper's, one field of
`per_phenotype_fields` at a time (`per_phenotype/<field>`); wall-motion-aware (same territory or
WMSI, `wall_motion`, only when the phenotype CSV carries wmsi or territory).

Classification of the test ECGs' phenotypes (truth = the paired study's measurements):
- cross-modal kNN: the test ECG's k nearest indexed train/val studies vote with their measured
  phenotypes (e2r.metrics.knn.knn_predict, the vote `e2r search` uses);
- the paper's protocol: kNN (k=5, cosine, uniform) over the ECG embeddings of labelled train ECGs;
- chance: the train split's class priors (a constant score: AUROC 0.5, AUPRC the prevalence) and
  a random similarity matrix for retrieval;
- direct: the predictions of a supervised ECG -> phenotype model (the ceiling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from e2r.errors import DataError
from e2r.phenotypes import LVEF_CLASSES
from e2r.phenotypes import cohort_sd, lvef_class_index, lvef_le45_flag, phenotype_arrays
from e2r.metrics.knn import VOTE_K, VOTE_TEMPERATURE, KNNPredictions, ecg_knn_classify, ecg_knn_regress, knn_predict, label_arrays
from e2r.metrics.classification import binary_metrics, classification_metrics, regression_metrics
from e2r.metrics.retrieval import (
    PER_PHENOTYPE_FIELDS,
    RELEVANCE_FIELDS,
    exact_relevance,
    per_phenotype_relevance,
    phenotype_relevance,
    retrieval_metrics,
    similarity_matrix,
    wall_motion_relevance,
)


@dataclass(frozen=True)
class EvalSettings:
    """Every choice of the protocol that changes a number (all written to results.json)."""

    ks: tuple[int, ...] = (1, 5, 10)
    knn_k: int = VOTE_K                # cross-modal kNN: labelled neighbours that vote
    knn_weighting: str = "softmax"     # softmax of similarity / temperature (e2r search's vote)
    knn_temperature: float = VOTE_TEMPERATURE
    paper_k: int = 5                   # the paper's protocol
    relevance_fields: tuple[str, ...] = RELEVANCE_FIELDS          # e2r's conjunction: all at once
    per_phenotype_fields: tuple[str, ...] = PER_PHENOTYPE_FIELDS  # the paper's: one mAP per field
    relevance_tol: float = 0.5         # x cohort SD (every phenotype-based rule)
    curve_max_k: int = 50              # Recall@K curves up to this K (capped at the gallery)


@dataclass(frozen=True)
class PhenotypePredictions:
    """Per-query phenotype estimates: LVEF class probabilities (over LVEF_CLASSES), P(LVEF<=45),
    P(LVH) and LVEF (%); NaN where a query got no estimate."""

    class_proba: np.ndarray  # (Q, 3)
    p_le45: np.ndarray       # (Q,)
    p_lvh: np.ndarray        # (Q,)
    lvef: np.ndarray         # (Q,)

    @classmethod
    def from_knn(cls, pred: KNNPredictions) -> "PhenotypePredictions":
        return cls(pred.class_proba, pred.p_le45, pred.p_lvh, pred.lvef)

    def __post_init__(self) -> None:
        n = len(self.lvef)
        if self.class_proba.shape != (n, len(LVEF_CLASSES)) or len(self.p_le45) != n or len(self.p_lvh) != n:
            raise DataError(f"PhenotypePredictions: inconsistent shapes {self.class_proba.shape}, "
                            f"{len(self.p_le45)}, {len(self.p_lvh)}, {n}")


@dataclass(frozen=True)
class EmbeddingSet:
    """The arrays one embedding arm is evaluated on (rows of the *_uids name each row's study)."""

    test_ecg: np.ndarray           # (Q, D) test ECG embeddings
    test_ecg_study: Sequence[str]  # (Q,) the study each test ECG is paired with
    test_studies: np.ndarray       # (G, D) every indexed test study
    test_study_uids: Sequence[str]
    archive: np.ndarray            # (A, D) indexed train/val studies (the kNN archive)
    archive_uids: Sequence[str]
    train_ecg: np.ndarray          # (T, D) labelled train ECG embeddings (paper protocol)
    train_ecg_study: Sequence[str]


@dataclass
class ArmEval:
    """Metrics of one arm and seed, plus the curves and raw estimates the plots need."""

    metrics: dict[str, Any]
    curves: dict[str, list[float]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def truth_of(rows: Sequence[Optional[Mapping[str, Any]]]) -> dict[str, Any]:
    """Ground-truth labels of the test ECGs from their paired studies' phenotype rows."""
    arr = phenotype_arrays(rows, ("lvef",))["lvef"]
    lvh = label_arrays(rows)["lvh"]
    cls = [LVEF_CLASSES[i] if i >= 0 else None for i in lvef_class_index(arr)]  # from the number, always consistent
    return {"lvef": arr, "le45": lvef_le45_flag(arr),
            "lvh": lvh, "lvef_class": cls}


def phenotype_metrics(pred: PhenotypePredictions, truth: Mapping[str, Any]) -> dict[str, Any]:
    """LVEF 3-class (macro AUROC/AUPRC, balanced accuracy, F1), LVEF<=45 and LVH (AUROC, AUPRC, ...),
    and LVEF regression (MAE, RMSE, r)."""
    return {
        "lvef_class": classification_metrics(truth["lvef_class"], pred.class_proba, LVEF_CLASSES),
        "lvef_le45": binary_metrics(truth["le45"], pred.p_le45),
        "lvh": binary_metrics(truth["lvh"], pred.p_lvh),
        "lvef": regression_metrics(truth["lvef"], pred.lvef),
    }


def relevance_sd(phenotypes: Mapping[str, Mapping[str, Any]], settings: EvalSettings) -> dict[str, float]:
    """The cohort SD (e2r.phenotypes.cohort_sd) of every field a phenotype-based relevance reads:
    the conjunction's, the per-phenotype ones (lvsv from the derived values) and `wmsi` when the
    CSV carries it. One width per field for every arm, seed and direction."""
    fields = tuple(dict.fromkeys((*settings.relevance_fields, *settings.per_phenotype_fields, "wmsi")))
    sd = cohort_sd(phenotypes, fields)
    if not np.isfinite(sd["wmsi"]):  # no WMSI in the cohort: no wall-motion block, no width to report
        del sd["wmsi"]
    return sd


def carries_wall_motion(rows: Sequence[Optional[Mapping[str, Any]]]) -> bool:
    """True when some phenotype row holds a wmsi or a territory (the optional columns)."""
    return any(r is not None and (r.get("wmsi") is not None or r.get("territory") is not None) for r in rows)


def phenotype_relevances(query_rows: Sequence, gallery_rows: Sequence, sd: Mapping[str, float],
                         settings: EvalSettings) -> dict[str, Any]:
    """Every phenotype-based relevance matrix, bool (Q, G), under its results key: `phenotype` (the
    conjunction), `per_phenotype` ({field: matrix}, the paper's) and `wall_motion` (only when the
    query and gallery rows carry wmsi or territory)."""
    fields = settings.relevance_fields
    tol = settings.relevance_tol
    out: dict[str, Any] = {
        "phenotype": phenotype_relevance(phenotype_arrays(query_rows, fields), phenotype_arrays(gallery_rows, fields),
                                         fields=fields, sd=sd, tol=tol)}
    per = settings.per_phenotype_fields
    if per:
        out["per_phenotype"] = per_phenotype_relevance(phenotype_arrays(query_rows, per),
                                                       phenotype_arrays(gallery_rows, per), per, sd=sd, tol=tol)
    if carries_wall_motion(query_rows) and carries_wall_motion(gallery_rows):
        out["wall_motion"] = wall_motion_relevance(
            phenotype_arrays(query_rows, ("wmsi",))["wmsi"], phenotype_arrays(gallery_rows, ("wmsi",))["wmsi"],
            [r.get("territory") if r else None for r in query_rows],
            [r.get("territory") if r else None for r in gallery_rows], sd=sd, tol=tol)
    return out


def _scores(sim: np.ndarray, rels: Mapping[str, Any], ks: Sequence[int]) -> dict[str, Any]:
    """retrieval_metrics(...).to_dict() of every matrix of a (nested) relevance dict, same keys."""
    return {k: _scores(sim, v, ks) if isinstance(v, Mapping) else retrieval_metrics(sim, v, ks=ks).to_dict()
            for k, v in rels.items()}


def retrieval_block(sim: np.ndarray, query_keys: Sequence[str], gallery_keys: Sequence[str],
                    query_rows: Sequence, gallery_rows: Sequence, sd: Mapping[str, float],
                    settings: EvalSettings) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Retrieval metrics of one direction under every relevance rule (exact, phenotype,
    per_phenotype, wall_motion: `phenotype_relevances`), and the Recall@K curves of the first two.

    `query_keys` / `gallery_keys` are the study UIDs that define an exact match (for an ECG: its
    paired study); `*_rows` the phenotype rows of those studies.
    """
    rels = {"exact": exact_relevance(query_keys, gallery_keys),
            **phenotype_relevances(query_rows, gallery_rows, sd, settings)}
    max_k = min(settings.curve_max_k, sim.shape[1])
    out, curves = {}, {}
    for name in ("exact", "phenotype"):
        m = retrieval_metrics(sim, rels.pop(name), ks=settings.ks)
        out[name] = m.to_dict()
        curves[name] = [float(v) for v in m.recall_curve(max_k)]
    out.update(_scores(sim, rels, settings.ks))
    return out, curves


def retrieval_metrics_both(ecg_sim: np.ndarray, ecg_study: Sequence[str], gallery_uids: Sequence[str],
                           phenotypes: Mapping[str, Mapping[str, Any]], sd: Mapping[str, float],
                           settings: EvalSettings) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """ECG -> echo (sim rows = test ECGs, columns = test studies) and echo -> ECG (the transpose,
    restricted to the studies that have a test ECG)."""
    ecg_study = list(ecg_study)
    gallery_uids = list(gallery_uids)
    if ecg_sim.shape != (len(ecg_study), len(gallery_uids)):
        raise DataError(f"retrieval: similarity shape {ecg_sim.shape} does not match "
                        f"{len(ecg_study)} ECGs x {len(gallery_uids)} studies")
    rows_q = [phenotypes.get(u) for u in ecg_study]
    rows_g = [phenotypes.get(u) for u in gallery_uids]
    fwd, fwd_curves = retrieval_block(ecg_sim, ecg_study, gallery_uids, rows_q, rows_g, sd, settings)
    paired = set(ecg_study)
    cols = [j for j, u in enumerate(gallery_uids) if u in paired]
    if not cols:
        raise DataError("retrieval: none of the test ECGs' paired studies is in the index; "
                        "index the archive that holds the test studies")
    study_q = [gallery_uids[j] for j in cols]
    rev, rev_curves = retrieval_block(ecg_sim[:, cols].T, study_q, ecg_study, [rows_g[j] for j in cols],
                                      rows_q, sd, settings)
    curves = {f"ecg_to_echo/{k}": v for k, v in fwd_curves.items()}
    curves.update({f"echo_to_ecg/{k}": v for k, v in rev_curves.items()})
    return {"ecg_to_echo": fwd, "echo_to_ecg": rev}, curves


def cross_modal_knn(test_ecg: np.ndarray, archive: np.ndarray, archive_rows: Sequence,
                    settings: EvalSettings) -> PhenotypePredictions:
    """Test ECGs -> their k nearest archive studies vote (knn_predict over the full similarity)."""
    if len(archive) == 0:
        raise DataError("cross-modal kNN: no indexed train/val study to vote; index the whole archive")
    sim = similarity_matrix(test_ecg, archive)
    pred = knn_predict(sim, label_arrays(archive_rows), k=settings.knn_k, weighting=settings.knn_weighting,
                       temperature=settings.knn_temperature)
    return PhenotypePredictions.from_knn(pred)


def paper_knn(train_ecg: np.ndarray, train_rows: Sequence, test_ecg: np.ndarray, k: int = 5) -> PhenotypePredictions:
    """The paper's protocol: kNN (k, cosine, uniform vote) over labelled train ECG embeddings."""
    truth = truth_of(train_rows)
    cls, _ = ecg_knn_classify(train_ecg, truth["lvef_class"], test_ecg, k=k, classes=LVEF_CLASSES)
    le45 = _binary_knn(train_ecg, truth["le45"], test_ecg, k)
    lvh = _binary_knn(train_ecg, truth["lvh"], test_ecg, k)
    lvef = ecg_knn_regress(train_ecg, truth["lvef"], test_ecg, k=k)
    return PhenotypePredictions(cls, le45, lvh, lvef)


def _binary_knn(train_ecg: np.ndarray, labels: np.ndarray, test_ecg: np.ndarray, k: int) -> np.ndarray:
    lab = [None if not np.isfinite(v) else int(v) for v in labels]
    if all(v is None for v in lab):
        return np.full(len(test_ecg), np.nan)
    proba, _ = ecg_knn_classify(train_ecg, lab, test_ecg, k=k, classes=(0, 1))
    return proba[:, 1]


def prior_predictions(train_rows: Sequence, n: int) -> PhenotypePredictions:
    """Chance: every test ECG gets the train split's class frequencies and mean LVEF."""
    truth = truth_of(train_rows)
    counts = np.array([sum(1 for c in truth["lvef_class"] if c == name) for name in LVEF_CLASSES], float)
    if counts.sum() == 0:
        raise DataError("chance arm: no train study carries an LVEF; check the phenotype CSV")
    proba = np.tile(counts / counts.sum(), (n, 1))
    return PhenotypePredictions(proba, np.full(n, np.nanmean(truth["le45"])),
                                np.full(n, np.nanmean(truth["lvh"]) if np.isfinite(truth["lvh"]).any() else np.nan),
                                np.full(n, np.nanmean(truth["lvef"])))


def evaluate_embeddings(emb: EmbeddingSet, phenotypes: Mapping[str, Mapping[str, Any]], sd: Mapping[str, float],
                        settings: EvalSettings) -> ArmEval:
    """Every metric of one trained (or random-init) arm and seed."""
    sim = similarity_matrix(emb.test_ecg, emb.test_studies)  # (Q, G)
    retrieval, curves = retrieval_metrics_both(sim, emb.test_ecg_study, emb.test_study_uids, phenotypes, sd,
                                               settings)
    test_rows = [phenotypes.get(u) for u in emb.test_ecg_study]
    truth = truth_of(test_rows)
    raw: dict[str, Any] = {"truth": truth}
    archive_rows = [phenotypes.get(u) for u in emb.archive_uids]
    if np.isfinite(label_arrays(archive_rows)["lvef"]).any():
        raw["cross_modal_knn"] = cross_modal_knn(emb.test_ecg, emb.archive, archive_rows, settings)
    train_rows = [phenotypes.get(u) for u in emb.train_ecg_study]
    if np.isfinite(truth_of(train_rows)["lvef"]).any():
        raw["paper_knn"] = paper_knn(emb.train_ecg, train_rows, emb.test_ecg, settings.paper_k)
    # A block is left out (and the report shows n/a) when no labelled train/val study or ECG exists.
    classification = {m: phenotype_metrics(raw[m], truth) for m in ("cross_modal_knn", "paper_knn") if m in raw}
    return ArmEval({"retrieval": retrieval, "classification": classification}, curves, raw)


def evaluate_chance(test_ecg_study: Sequence[str], test_study_uids: Sequence[str], train_ecg_study: Sequence[str],
                    phenotypes: Mapping[str, Mapping[str, Any]], sd: Mapping[str, float], settings: EvalSettings,
                    seed: int) -> ArmEval:
    """Chance: a seeded random similarity for retrieval, the train priors for classification."""
    rng = np.random.default_rng([seed, 0xC4A])
    sim = rng.random((len(test_ecg_study), len(test_study_uids)))
    retrieval, curves = retrieval_metrics_both(sim, test_ecg_study, test_study_uids, phenotypes, sd, settings)
    truth = truth_of([phenotypes.get(u) for u in test_ecg_study])
    prior = prior_predictions([phenotypes.get(u) for u in train_ecg_study], len(test_ecg_study))
    metrics = {"retrieval": retrieval, "classification": {"prior": phenotype_metrics(prior, truth)}}
    return ArmEval(metrics, curves, {"truth": truth, "prior": prior})


def evaluate_direct(pred: PhenotypePredictions, test_ecg_study: Sequence[str],
                    phenotypes: Mapping[str, Mapping[str, Any]]) -> ArmEval:
    """A model that predicts phenotypes directly (the supervised ceiling): classification only."""
    truth = truth_of([phenotypes.get(u) for u in test_ecg_study])
    return ArmEval({"classification": {"direct": phenotype_metrics(pred, truth)}}, {},
                   {"truth": truth, "direct": pred})


def evaluate_tower(study_vectors: Mapping[str, np.ndarray], test_ecg_study: Sequence[str], splits: Any,
                   sd: Mapping[str, float], settings: EvalSettings) -> ArmEval:
    """The echo tower alone: each test ECG's paired study is the query (so the truth and the
    numbers line up with the ECG arms), echo -> echo over the other test studies with
    phenotype-aware relevance, and the kNN vote of its nearest train/val studies."""
    split_of = splits.study_split()
    phenotypes = splits.phenotypes
    queries = [u for u in test_ecg_study if u in study_vectors]
    test_uids = sorted(u for u in study_vectors if split_of.get(u) == "test")
    archive_uids = sorted(u for u in study_vectors if split_of.get(u) in ("train", "val"))
    if not queries or len(test_uids) < 2:
        raise DataError("echo-tower arm: fewer than two test studies have tower embeddings; check the archive")
    q = np.stack([study_vectors[u] for u in queries])
    g = np.stack([study_vectors[u] for u in test_uids])
    sim = similarity_matrix(q, g)  # (Q, G)
    rows_q = [phenotypes.get(u) for u in queries]
    rels = phenotype_relevances(rows_q, [phenotypes.get(u) for u in test_uids], sd, settings)
    matrices = [rels["phenotype"], *rels.get("per_phenotype", {}).values()]
    matrices += [rels["wall_motion"]] if "wall_motion" in rels else []
    col = {u: j for j, u in enumerate(test_uids)}
    for i, u in enumerate(queries):  # a study is not its own neighbour: ranked last, not relevant
        sim[i, col[u]] = -2.0
        for rel in matrices:
            rel[i, col[u]] = False
    m = retrieval_metrics(sim, rels.pop("phenotype"), ks=settings.ks)
    curves = {"echo_to_echo/phenotype": [float(v) for v in m.recall_curve(min(settings.curve_max_k, len(test_uids)))]}
    truth = truth_of(rows_q)
    raw: dict[str, Any] = {"truth": truth}
    archive_rows = [phenotypes.get(u) for u in archive_uids]
    classification = {}
    if archive_uids and np.isfinite(label_arrays(archive_rows)["lvef"]).any():
        archive = np.stack([study_vectors[u] for u in archive_uids])
        raw["echo_knn"] = cross_modal_knn(q, archive, archive_rows, settings)
        classification["echo_knn"] = phenotype_metrics(raw["echo_knn"], truth)
    echo_to_echo = {"phenotype": m.to_dict(), **_scores(sim, rels, settings.ks)}
    metrics = {"retrieval": {"echo_to_echo": echo_to_echo}, "classification": classification}
    return ArmEval(metrics, curves, raw)
