"""The benchmark protocol on small synthetic data: splits, metrics against brute-force references,
the orchestration with injected steps (no training), the report, and the supervised ceiling."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from e2r.errors import DataError
from e2r.phenotypes import LVEF_CLASSES, write_phenotypes
from e2r.store import Record
from e2r.phenotypes import cohort_sd
from queries.eval.data import read_splits
from queries.eval.arms import (
    EvalSettings,
    PhenotypePredictions,
    cross_modal_knn,
    paper_knn,
    prior_predictions,
    relevance_sd,
    retrieval_metrics_both,
    truth_of,
)
from queries.eval.protocol import BenchmarkSpec, BenchmarkSteps, make_random_bundle, run_benchmark
from queries.eval.report import claims, render_markdown

FIELDS = ("lvef", "lvedv", "lvesv", "ivsd", "lvpwd")


def _pheno(uid: str, rng: np.random.Generator, lvef: float | None = None) -> dict:
    lvef = float(rng.uniform(20, 70)) if lvef is None else lvef
    edv = float(rng.uniform(80, 200))
    return {"study_uid": uid, "patient_id": "", "study_date": "21800101", "lvef": lvef, "lvedv": edv,
            "lvesv": edv * (1 - lvef / 100), "ivsd": float(rng.uniform(7, 16)), "lvpwd": float(rng.uniform(7, 15)),
            "lv_mass": None, "la_volume": None, "rv_diameter": None, "heart_rate": 70.0, "rhythm": "sinus"}


def _write_csvs(root: Path, rows: list[dict], phenos: list[dict]) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "pairs.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["ecg_path", "study_uid", "patient_id", "days", "split"])
        w.writeheader()
        w.writerows(rows)
    write_phenotypes(root / "phenotypes.csv", phenos)
    return root / "pairs.csv", root / "phenotypes.csv"


def test_read_splits_counts_and_refuses_leaks(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"ecg_path": f"ecg/{i}.hea" if i % 4 else "", "study_uid": f"S{i}", "patient_id": f"P{i // 2}",
             "days": 0, "split": ("train", "val", "test")[(i // 2) % 3]} for i in range(12)]
    pairs, ph = _write_csvs(tmp_path / "a", rows, [_pheno(r["study_uid"], rng) for r in rows])
    splits = read_splits(pairs, ph)
    sizes = splits.sizes()
    assert sizes["train"] == {"patients": 2, "studies": 4, "pairs": 3, "studies_with_phenotypes": 4}
    assert sizes["test"]["pairs"] == 3 and sizes["test"]["patients"] == 2
    assert splits.ecg_rows("test")[0].ecg_path == str(tmp_path / "a" / "ecg" / "5.hea")

    leak = [dict(r) for r in rows]
    leak[1]["split"] = "test"  # patient P0 now in train and test
    pairs, ph = _write_csvs(tmp_path / "b", leak, [_pheno(r["study_uid"], rng) for r in rows])
    with pytest.raises(DataError, match="patient P0 is in several splits"):
        read_splits(pairs, ph)
    no_test = [dict(r, split="train") for r in rows]
    pairs, ph = _write_csvs(tmp_path / "c", no_test, [_pheno(r["study_uid"], rng) for r in rows])
    with pytest.raises(DataError, match="no test-split row"):
        read_splits(pairs, ph)


def _brute_recall_at_1(sim, keys_q, keys_g):
    return float(np.mean([keys_g[int(np.argmax(row))] == k for row, k in zip(sim, keys_q)]))


def test_retrieval_both_directions_match_brute_force():
    rng = np.random.default_rng(1)
    uids = [f"S{i}" for i in range(30)]
    phenos = {u: _pheno(u, rng) for u in uids}
    ecg_study = uids[:20]  # 20 test ECGs paired with the first 20 studies; 10 studies without ECG
    sim = rng.standard_normal((20, 30))
    sd = cohort_sd(phenos, FIELDS)
    out, curves = retrieval_metrics_both(sim, ecg_study, uids, phenos, sd, EvalSettings())
    fwd = out["ecg_to_echo"]["exact"]
    assert fwd["recall@1"] == pytest.approx(_brute_recall_at_1(sim, ecg_study, uids))
    ranks = [1 + int(np.sum(sim[i] > sim[i, i])) for i in range(20)]
    assert fwd["median_rank"] == pytest.approx(np.median(ranks))
    assert fwd["map"] == pytest.approx(np.mean([1 / r for r in ranks]))
    rev = out["echo_to_ecg"]["exact"]
    assert rev["n_queries"] == 20 and rev["gallery_size"] == 20  # only studies with an ECG are queries
    assert rev["recall@1"] == pytest.approx(_brute_recall_at_1(sim[:, :20].T, uids[:20], ecg_study))
    # phenotype-aware: brute-force relevance of query 0
    rel0 = [all(abs(phenos[g][f] - phenos[ecg_study[0]][f]) <= 0.5 * sd[f] for f in FIELDS) for g in uids]
    assert out["ecg_to_echo"]["phenotype"]["mean_relevant"] >= 1 and rel0[0]
    assert len(curves["ecg_to_echo/exact"]) == 30 and curves["ecg_to_echo/exact"][-1] == pytest.approx(1.0)


def _brute_map(sim, rel):
    """Mean average precision, ties pessimistic (irrelevant first), in python loops."""
    aps = []
    for s, r in zip(sim.tolist(), rel.tolist()):
        if not any(r):
            continue
        flags = [r[j] for j in sorted(range(len(s)), key=lambda j: (-s[j], r[j], j))]
        hits = np.cumsum(flags)
        aps.append(np.mean([hits[i] / (i + 1) for i, f in enumerate(flags) if f]))
    return float(np.mean(aps))


def test_per_phenotype_and_wall_motion_blocks_match_brute_force():
    rng = np.random.default_rng(8)
    uids = [f"S{i}" for i in range(30)]
    terr = ("none", "LAD", "RCA", None)
    phenos = {u: {**_pheno(u, rng), "wmsi": float(rng.choice([1.0, 1.5, 2.2])), "territory": terr[i % 4]}
              for i, u in enumerate(uids)}
    phenos["S5"]["lvesv"] = None  # no lvsv for S5
    ecg_study = uids[:20]
    sim = np.round(rng.standard_normal((20, 30)), 1)  # some ties
    settings = EvalSettings()
    sd = relevance_sd(phenos, settings)
    assert set(sd) == {*FIELDS, "lvsv", "wmsi"}
    out, curves = retrieval_metrics_both(sim, ecg_study, uids, phenos, sd, settings)

    def sv(u):
        r = phenos[u]
        return np.nan if r["lvesv"] is None else r["lvedv"] - r["lvesv"]
    for f in ("lvef", "lvedv", "lvesv", "lvsv"):
        val = sv if f == "lvsv" else (lambda u, f=f: np.nan if phenos[u][f] is None else phenos[u][f])
        rel = np.array([[abs(val(g) - val(q)) <= 0.5 * sd[f] for g in uids] for q in ecg_study])
        assert out["ecg_to_echo"]["per_phenotype"][f]["map"] == pytest.approx(_brute_map(sim, rel)), f
        rev = rel[:, :20].T  # echo -> ECG: the studies with an ECG are the queries
        assert out["echo_to_ecg"]["per_phenotype"][f]["map"] == pytest.approx(_brute_map(sim[:, :20].T, rev)), f
    wm = np.array([[(phenos[q]["territory"] is not None and phenos[q]["territory"] == phenos[g]["territory"])
                    or abs(phenos[g]["wmsi"] - phenos[q]["wmsi"]) <= 0.5 * sd["wmsi"] for g in uids] for q in ecg_study])
    assert out["ecg_to_echo"]["wall_motion"]["map"] == pytest.approx(_brute_map(sim, wm))
    assert out["ecg_to_echo"]["wall_motion"]["mean_relevant"] == pytest.approx(wm.sum(1).mean())
    # the conjunction is computed as before, and only the first two rules draw curves
    base, _ = retrieval_metrics_both(sim, ecg_study, uids, phenos, cohort_sd(phenos, FIELDS), EvalSettings())
    assert out["ecg_to_echo"]["phenotype"] == base["ecg_to_echo"]["phenotype"]
    assert set(curves) == {f"{d}/{r}" for d in ("ecg_to_echo", "echo_to_ecg") for r in ("exact", "phenotype")}
    # without the optional columns: no wall-motion block and no WMSI width
    plain = {u: {k: v for k, v in r.items() if k not in ("wmsi", "territory")} for u, r in phenos.items()}
    sd_plain = relevance_sd(plain, settings)
    out, _ = retrieval_metrics_both(sim, ecg_study, uids, plain, sd_plain, settings)
    assert "wmsi" not in sd_plain and "wall_motion" not in out["ecg_to_echo"]
    assert set(out["ecg_to_echo"]["per_phenotype"]) == {"lvef", "lvedv", "lvesv", "lvsv"}


def test_knn_blocks_against_references():
    rng = np.random.default_rng(2)
    # two clusters: reduced LVEF near e0, preserved near e1
    def emb(n, c):
        return np.eye(4)[c] * 3 + 0.1 * rng.standard_normal((n, 4))
    lvefs = [30.0] * 10 + [60.0] * 10
    rows = [_pheno(f"A{i}", rng, lvef=v) for i, v in enumerate(lvefs)]
    archive = np.vstack([emb(10, 0), emb(10, 1)])
    test = np.vstack([emb(3, 0), emb(3, 1)])
    truth = truth_of([_pheno("q", rng, lvef=v) for v in [30.0] * 3 + [60.0] * 3])
    x = cross_modal_knn(test, archive, rows, EvalSettings(knn_k=5))
    assert np.all(x.class_proba[:3, 0] > 0.5) and np.all(x.class_proba[3:, 2] > 0.5)
    assert x.lvef[:3] == pytest.approx([30.0] * 3) and x.lvef[3:] == pytest.approx([60.0] * 3)
    p = paper_knn(archive, rows, test, k=5)
    from sklearn.neighbors import KNeighborsRegressor

    ref = KNeighborsRegressor(5, metric="cosine", algorithm="brute").fit(archive, lvefs).predict(test)
    assert p.lvef == pytest.approx(ref)
    assert np.all(p.p_le45[:3] == 1.0) and np.all(p.p_le45[3:] == 0.0)
    prior = prior_predictions(rows, 6)
    assert prior.class_proba[0] == pytest.approx([0.5, 0.0, 0.5]) and prior.lvef[0] == pytest.approx(45.0)
    assert truth["le45"].tolist() == [1, 1, 1, 0, 0, 0]


class FakeStore:
    """The part of VectorStore the benchmark reads: collections of (uid -> vector)."""

    def __init__(self):
        self.collections: dict[str, dict] = {}

    def collection_exists(self, name):
        return name in self.collections

    def get_metadata(self, name):
        return {"model_hash": self.collections[name]["hash"]}

    def drop_collection(self, name):
        self.collections.pop(name, None)

    def iterate(self, name, with_vectors=False):
        for uid, vec in self.collections[name]["vectors"].items():
            yield Record(id=uid, payload={"study_uid": uid}, vector=vec if with_vectors else None)


def _ecg_cohort(root: Path, n_patients: int = 18) -> tuple[Path, Path, dict]:
    """WFDB ECGs (100 Hz, 10 s) + pairs/phenotype CSVs; no echo files (the index is faked)."""
    from helpers.cohort import write_ecg

    rng = np.random.default_rng(3)
    rows, phenos = [], []
    for i in range(n_patients):
        split = ("train", "train", "val", "test")[i % 4] if i < 16 else "test"
        for k in range(2 if i % 3 == 0 else 1):  # some patients have an archive-only second study
            uid = f"S{i}.{k}"
            ecg = ""
            if k == 0:
                write_ecg(root / "ecg" / f"e{i}", float(rng.uniform()), rng)
                ecg = f"ecg/e{i}"
            rows.append({"ecg_path": ecg, "study_uid": uid, "patient_id": f"P{i}", "days": 0, "split": split})
            phenos.append({**_pheno(uid, rng, lvef=30.0 if i % 2 else 60.0),  # both classes in every split
                           "wmsi": 1.6 if i % 2 else 1.0, "territory": "LAD" if i % 2 else "none"})
    pairs, ph = _write_csvs(root, rows, phenos)
    return pairs, ph, {r["study_uid"]: r for r in rows}


def perfect_index(store, rows, ecg_inputs):
    """The index step of a fake benchmark: a "perfect" index, where a paired study's vector is its
    ECG's embedding under the arm's model (archive-only studies: seeded noise). `ecg_inputs(loaded)`
    gives {study_uid: the model's input ECG} of the paired studies."""
    from e2r.bundle import load_model
    from e2r.encode import encode_ecg

    def index(model_dir, collection):
        loaded = load_model(model_dir)
        inputs = ecg_inputs(loaded)
        vecs = dict(zip(inputs, encode_ecg(loaded, list(inputs.values()))))
        rng = np.random.default_rng(0)
        for u in rows:
            vecs.setdefault(u, rng.standard_normal(loaded.preset.embed_dim).astype(np.float32))
        store.collections[collection] = {"hash": loaded.hash, "vectors": vecs}
        return {"indexed": len(vecs)}

    return index


def test_run_benchmark_with_injected_steps_writes_report(tmp_path):
    from e2r.phenotypes import read_phenotypes
    from e2r.ecg import read_ecg
    from e2r.ecg.preprocess import preprocess_ecg

    pairs, ph, rows = _ecg_cohort(tmp_path / "cohort")
    store = FakeStore()
    trained: list[tuple[str, int]] = []
    towers: list[int] = []

    def pretrain_tower(seed, out_dir):  # no pretraining: the folder name stands for the tower
        towers.append(seed)
        return {"tower_dir": out_dir, "hash": f"tower{seed}"}

    def train(arm, seed, out_dir, tower_dir):  # no training: a seeded random model stands in
        assert tower_dir.name == f"echo-tower-seed{seed}"
        trained.append((arm, seed))
        return {"model_dir": make_random_bundle("tiny", 100 + seed, out_dir), "note": "fake"}

    def tower_studies(tower_dir):  # every study: two views that carry its LVEF
        rng = np.random.default_rng(1)
        lvef = {u: r["lvef"] for u, r in read_phenotypes(ph)[0].items()}
        return {u: np.stack([[lvef[u] / 60.0, 1.0, *rng.normal(0, 0.01, 6)]] * 2) for u in rows}

    paired = [u for u, r in rows.items() if r["ecg_path"]]
    from e2r.presets import get_preset

    ecgs = [preprocess_ecg(read_ecg(Path(pairs).parent / rows[u]["ecg_path"]), get_preset("tiny").ecg_preprocess)
            for u in paired]

    index = perfect_index(store, rows, lambda loaded: dict(zip(paired, ecgs)))

    def supervised(task):
        assert task.train_x.shape[1:] == (12, 1000) and len(task.train_rows) == len(task.train_x)
        n = len(task.test_x)
        encoder = _graphless_bundle(300 + task.seed, task.out_dir / "encoder")  # its feature extractor
        return PhenotypePredictions(np.tile([0.2, 0.3, 0.5], (n, 1)), np.full(n, 0.3), np.full(n, 0.2),
                                    np.full(n, 50.0)), {"fake": True, "model_dir": str(encoder)}

    def train_ssl(task):  # no training: a seeded random model stands in
        assert task.out_dir.name == f"ssl-seed{task.seed}" and len(task.val_rows) == len(task.val_x) > 0
        return {"model_dir": _graphless_bundle(200 + task.seed, task.out_dir), "fake": True}

    probe = FakeRealProbe()
    spec = BenchmarkSpec(pairs_csv=pairs, phenotypes_csv=ph, workdir=tmp_path / "work", out_dir=tmp_path / "out",
                         seeds=(0, 1), arms=("chance", "criteria", "random-init", "ssl", "echo-tower", "mean",
                                             "attention", "supervised"),
                         settings=EvalSettings(knn_k=3), context={"real_ecgs": REAL_CONTEXT})
    result = run_benchmark(spec, BenchmarkSteps(store=store, index=index, train=train, train_supervised=supervised,
                                                pretrain_tower=pretrain_tower, tower_studies=tower_studies,
                                                train_ssl=train_ssl, probe_real_ecgs=probe))
    assert trained == [("mean", 0), ("mean", 1), ("attention", 0), ("attention", 1)]
    assert towers == [0, 1]  # one tower per seed, shared by the alignment arms and the tower arm
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    att = res["arms"]["attention"]
    assert att["seeds"] == [0, 1] and len(att["per_seed"]) == 2
    # the fake index makes every test ECG's paired study its nearest neighbour
    assert att["mean_sd"]["retrieval"]["ecg_to_echo"]["exact"]["recall@1"] == [1.0, 0.0]
    assert att["per_seed"][0]["retrieval"]["ecg_to_echo"]["exact"]["n_queries"] == res["splits"]["test"]["pairs"]
    assert set(res["arms"]["supervised"]["mean_sd"]) == {"classification", "feature_extractor"}
    assert res["arms"]["chance"]["mean_sd"]["classification"]["prior"]["lvef_le45"]["auroc"] == [0.5, 0.0]
    assert att["runs"][0]["gallery_studies"] == res["splits"]["test"]["studies"]
    assert att["runs"][0]["archive_studies"] == res["splits"]["train"]["studies"] + res["splits"]["val"]["studies"]
    assert res["synthetic"] is True and res["versions"]["torch"]
    tower = res["arms"]["echo-tower"]
    # queries: the test ECGs' paired studies; the fake tower encodes LVEF, so the vote is perfect
    assert tower["per_seed"][0]["retrieval"]["echo_to_echo"]["phenotype"]["n_queries"] == res["splits"]["test"]["pairs"]
    assert tower["mean_sd"]["classification"]["echo_knn"]["lvef_le45"]["auroc"][0] == 1.0
    assert tower["runs"][0]["tower"]["hash"] == "tower0"
    md = (tmp_path / "out" / "report.md").read_text()
    assert "synthetic phantom cohort" in md and "| Echo2ECG (attention pooling) | 1.000 ± 0.000 |" in md
    # the paper's per-phenotype relevance and the wall-motion one, beside the conjunction
    assert res["settings"]["per_phenotype_fields"] == ["lvef", "lvedv", "lvesv", "lvsv"]
    assert set(res["settings"]["relevance_sd"]) == {*FIELDS, "lvsv", "wmsi"}
    for arm, direction in (("attention", "ecg_to_echo"), ("chance", "echo_to_ecg"), ("echo-tower", "echo_to_echo")):
        block = res["arms"][arm]["mean_sd"]["retrieval"][direction]
        assert set(block["per_phenotype"]) == {"lvef", "lvedv", "lvesv", "lvsv"} and "map" in block["wall_motion"]
        assert "per_phenotype" in res["arms"][arm]["per_seed"][1]["retrieval"][direction]
    # the tower's queries are not their own neighbours under any rule; LVEF is 30 or 60, so the
    # fake tower (which encodes LVEF) ranks every same-LVEF study first: LVEF mAP 1
    tower_lvef = tower["per_seed"][0]["retrieval"]["echo_to_echo"]["per_phenotype"]["lvef"]
    assert tower_lvef["map"] == 1.0 and tower_lvef["mean_relevant"] < res["splits"]["test"]["studies"]
    assert "## Retrieval mAP: e2r's conjunction beside the paper's per-phenotype relevance" in md
    assert "| Arm | Direction | conjunction mAP | lvef mAP | lvedv mAP | lvesv mAP | lvsv mAP |" in md
    assert "| Echo tower alone (echo -> echo) | echo -> echo (tower) | " in md
    assert "## Retrieval: wall-motion-aware relevance" in md and "Not computed" not in md
    for arm in res["arms"].values():  # a cohort without wmsi / territory: the block says why it is missing
        for direction in (arm["mean_sd"].get("retrieval") or {}).values():
            direction.pop("wall_motion", None)
    assert "Not computed: the phenotype CSV carries no `wmsi` or `territory` column." in render_markdown(res)
    _check_criteria_arm(result, res, md, pairs, ph)
    _check_feature_extractors(res, md, pairs, ph, probe)
    for name in ("roc_lvef_le45.png", "recall_at_k.png", "lvef_pred_vs_true.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"
    assert len(result.out_files) == 5


def _check_criteria_arm(result, res, md, pairs, ph):
    """The criteria arm: one run, classification only, its logistic model = a direct sklearn fit on
    the criteria of the train ECGs, the raw rules = the voltage itself as the score."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from e2r.ecg import read_ecg
    from e2r.ecg.criteria import record_criteria

    crit = res["arms"]["criteria"]
    assert crit["seeds"] == [0] and crit["label"] == "Clinical ECG criteria (no e2r)"
    assert set(crit["mean_sd"]) == {"classification", "feature_extractor"}
    cls = crit["per_seed"][0]["classification"]
    assert set(cls) == {"logistic", "sokolow_lyon", "cornell"} and set(cls["cornell"]) == {"lvh"}
    assert crit["runs"][0]["features"] == {"lvh": ["sokolow_lyon_mv", "cornell_mv"], "le45": ["qrs_ms", "lbbb"]}
    splits = read_splits(pairs, ph)
    truth = {s: truth_of([splits.phenotypes[r.study_uid] for r in splits.ecg_rows(s)]) for s in ("train", "test")}
    feats = {s: [record_criteria(read_ecg(r.ecg_path)) for r in splits.ecg_rows(s)] for s in ("train", "test")}
    assert all(c.n_beats > 0 for s in feats.values() for c in s)
    ev = result.evals["criteria"][0]
    for target, names, key in (("lvh", ("sokolow_lyon_mv", "cornell_mv"), "p_lvh"),
                               ("le45", ("qrs_ms", "lbbb"), "p_le45")):
        x = {s: np.array([[float(getattr(c, n)) for n in names] for c in feats[s]]) for s in feats}
        ref = make_pipeline(StandardScaler(), LogisticRegression()).fit(x["train"], truth["train"][target].astype(int))
        want = ref.predict_proba(x["test"])[:, 1]
        np.testing.assert_allclose(getattr(ev.raw["criteria"], key), want, rtol=1e-6, atol=1e-9)
        block = "lvh" if target == "lvh" else "lvef_le45"
        assert cls["logistic"][block]["auroc"] == pytest.approx(roc_auc_score(truth["test"][target], want))
    sokolow = np.array([c.sokolow_lyon_mv for c in feats["test"]])
    assert cls["sokolow_lyon"]["lvh"]["auroc"] == pytest.approx(roc_auc_score(truth["test"]["lvh"], sokolow))
    assert crit["per_seed"][0]["classification"]["logistic"]["lvef_class"]["auroc_macro"] is None  # NaN: n/a
    assert "| Clinical ECG criteria (no e2r) | Sokolow-Lyon voltage as the LVH score (no fit) |" in md
    assert "Clinical ECG criteria: Sokolow-Lyon" in md


def _graphless_bundle(seed: int, out_dir: Path) -> Path:
    """A seeded untrained tiny bundle without the ONNX graph (the export is most of a bundle's cost)."""
    import torch

    from e2r.bundle import save_bundle
    from e2r.models import Echo2ECG
    from e2r.presets import get_preset

    torch.manual_seed(seed)
    save_bundle(Echo2ECG(get_preset("tiny")).eval(), out_dir, {"random_init": True, "seed": seed}, {}, ecg_graph=False)
    return out_dir


REAL_CONTEXT = {"title": "real", "source": "/data/ptbxl/ptbxl_database.csv", "format": "ptbxl", "listed": 40,
                "lvh_labelled": 40, "lvh_positives": 10, "bootstrap": 1000, "seed": 0}


class FakeRealProbe:
    """BenchmarkSteps.probe_real_ecgs without real ECGs: records who asked, answers fixed figures."""

    def __init__(self):
        self.calls: list[str] = []

    def bundle(self, model_dir):
        self.calls.append(Path(model_dir).name)
        return self._entry(0.6 + 0.1 * len(self.calls) % 0.3)

    def criteria(self):
        self.calls.append("criteria")
        return self._entry(0.9)

    @staticmethod
    def _entry(auc):
        return {"vectors": "fake", "left_out": 0, "wall_s": 0.0, "targets": {
            "lvh": {"name": "LVH", "auroc": auc, "ci_low": auc - 0.1, "ci_high": min(1.0, auc + 0.05), "positives": 10,
                    "negatives": 30, "split": "repeated_kfold"},
            "mi": {"name": "MI (vs NORM)", "auroc": None, "ci_low": None, "ci_high": None, "positives": 2,
                   "negatives": 30, "note": "cannot be scored: 2 positive", "split": None}}}


def _check_feature_extractors(res, md, pairs, ph, probe):
    """Every arm that reads ECGs scored as a feature extractor; the SSL arm only so, and said so; the
    kNN probe of one arm against a direct scikit-learn fit on the same features; the real-ECG probe."""
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import KNeighborsClassifier

    from e2r.bundle import load_model
    from e2r.ecg import read_for_model
    from e2r.encode import encode_ecg_features

    arms = res["arms"]
    assert set(arms["ssl"]["mean_sd"]) == {"feature_extractor"} and arms["ssl"]["label"] == "ECG-only SSL (SimCLR)"
    for arm in ("criteria", "random-init", "ssl", "mean", "attention", "supervised"):
        fx = arms[arm]["mean_sd"]["feature_extractor"]
        for probe_name in ("knn", "linear"):
            for key, metric in (("lvef_le45", "auroc"), ("lvh", "auroc"), ("lvef_class", "auroc_macro")):
                assert 0.0 <= fx[probe_name][key][metric][0] <= 1.0, (arm, probe_name, key)
    for arm in ("chance", "echo-tower"):
        assert "feature_extractor" not in arms[arm]["mean_sd"]
    # the random-init arm's kNN probe, seed 0, by hand on its pooled features
    splits = read_splits(pairs, ph)
    loaded = load_model(arms["random-init"]["runs"][0]["model_dir"])
    feats = {s: encode_ecg_features(loaded, [read_for_model(r.ecg_path, loaded.preset.ecg_preprocess)[1]
                                             for r in splits.ecg_rows(s)])[0] for s in ("train", "test")}
    truth = {s: truth_of([splits.phenotypes[r.study_uid] for r in splits.ecg_rows(s)]) for s in ("train", "test")}
    knn = KNeighborsClassifier(5, metric="cosine", algorithm="brute").fit(feats["train"], truth["train"]["le45"])
    want = roc_auc_score(truth["test"]["le45"], knn.predict_proba(feats["test"])[:, 1])
    assert arms["random-init"]["per_seed"][0]["feature_extractor"]["knn"]["lvef_le45"]["auroc"] == pytest.approx(want)
    # the report: the table, and the SSL arm's absence from the retrieval tables said
    assert "## The ECG encoder as a feature extractor: kNN and linear probes" in md
    assert "| ECG-only SSL (SimCLR) | kNN, k=5 (the paper's) |" in md
    assert "| Supervised ECG->phenotype (ceiling) | linear (logistic, C on val) |" in md
    assert "ECG-only SSL (SimCLR): no echo side" in md
    retrieval = md.split("## Retrieval: ECG -> echo study, exact pair relevance")[1].split("## ")[0]
    assert "ECG-only SSL" not in retrieval and "Echo2ECG (attention pooling)" in retrieval
    assert "Not in this table (no ECG vectors): Chance, Echo tower alone (echo -> echo)." in md
    claims_ = {c["check"] for c in res["claims"]}
    for other in ("ssl", "random-init"):
        for name in ("LVEF<=45 AUROC, knn probe", "LVH AUROC, linear probe"):
            assert f"attention > {other}: {name} on the ECG features" in claims_
    # the linear probe on real ECGs: every arm that reads ECGs, the criteria once
    assert probe.calls.count("criteria") == 1
    assert sorted(c for c in probe.calls if c != "criteria") == sorted(
        [f"{a}-seed{s}" for a in ("random-init", "ssl", "mean", "attention") for s in (0, 1)] + ["encoder", "encoder"])
    real = res["real_ecgs"]["probe"]
    assert set(real) == {"criteria", "random-init", "ssl", "mean", "attention", "supervised"}
    assert real["criteria"]["auroc"] == {"lvh": [0.9, 0.0], "mi": None}
    assert "### Linear probe on the real ECGs" in md
    assert "| Clinical ECG criteria (no e2r) | 0.900 ± 0.000 | 0.900 [0.80-0.95] | n/a | n/a (cannot be scored: 2 positive) |" in md


def test_claims_check_the_targets_and_the_seed_spread():
    def arm(map_, r10, le45, lvh, sd=0.01, lvef_map=0.5):
        return {"mean_sd": {"retrieval": {"ecg_to_echo": {"phenotype": {"map": (map_, sd)},
                                                          "per_phenotype": {"lvef": {"map": (lvef_map, sd)}},
                                                          "exact": {"recall@10": (r10, sd)}}},
                            "classification": {"cross_modal_knn": {"lvef_le45": {"auroc": (le45, sd)},
                                                                   "lvh": {"auroc": (lvh, sd)}}}}}
    res = {"arms": {"attention": arm(0.30, 0.20, 0.86, 0.69), "single-view": arm(0.295, 0.15, 0.80, 0.6, lvef_map=0.45),
                    "random-init": arm(0.2, 0.08, 0.5, 0.5),
                    "chance": {"mean_sd": {"retrieval": {"ecg_to_echo": {"phenotype": {"map": (0.2, 0.0)},
                                                                         "exact": {"recall@10": (0.16, 0.0)}}}}},
                    "supervised": {"mean_sd": {"classification": {"direct": {"lvef_le45": {"auroc": (0.9, 0.0)},
                                                                             "lvh": {"auroc": (0.8, 0.0)}}}}}}}
    got = {c["check"]: c["holds"] for c in claims(res)}
    assert got["attention LVEF<=45 AUROC (cross-modal kNN) >= 0.85"] is True
    assert got["attention LVH AUROC (cross-modal kNN) >= 0.7"] is False
    assert got["attention phenotype-aware mAP (ECG->echo) >= 1.2x chance"] is True   # 0.30 >= 0.24
    assert got["attention exact Recall@10 (ECG->echo) >= 1.3x chance"] is False      # 0.20 < 0.208
    assert got["attention LVEF<=45 AUROC (cross-modal kNN) >= 90% of the supervised ceiling"] is True
    assert got["attention LVH AUROC (cross-modal kNN) >= 90% of the supervised ceiling"] is False
    assert got["attention > random-init: phenotype-aware mAP (ECG->echo)"] is True
    assert got["attention > single-view: phenotype-aware mAP (ECG->echo)"] is False  # 0.005 < SD 0.01
    assert got["attention > single-view: LVEF<=45 AUROC (cross-modal kNN)"] is True
    assert got["attention > single-view: LVEF mAP, the paper's per-phenotype relevance (ECG->echo)"] is True  # 0.05 > 0.01


def train_ceiling_on_written_labels(seed: int = 0, n: int = 48):
    """The supervised ceiling trained on ECG-shaped noise with the LVEF written into the signal;
    (model, test-split predictions, every item's LVEF, targets). tests/margins.py sweeps it over seeds."""
    from trainer.supervised import SupervisedConfig, targets_of, train_supervised
    from e2r.presets import get_preset, with_overrides

    rng = np.random.default_rng(4)
    lvef = rng.uniform(20, 70, n)
    x = rng.standard_normal((n, 12, 1000)).astype(np.float32) * 0.1
    x[:, :, :500] += ((lvef - 45) / 25)[:, None, None]  # the label is written into the signal
    rows = [{"lvef": float(v), "ivsd": 14.0 if v < 40 else 9.0, "lvpwd": 9.0} for v in lvef]
    rows[0] = None  # a study without phenotypes: masked out of every loss
    cfg = SupervisedConfig(epochs=4, batch_size=16, lr=3e-3, warmup_epochs=0, seed=seed,
                           augment=SupervisedConfig().augment.__class__(enabled=False))
    small = with_overrides(get_preset("tiny"), ecg__dim=32, ecg__depth=1, ecg__heads=2)  # keeps the test fast
    split = 3 * n // 4
    model = train_supervised(x[:split], rows[:split], x[split:], rows[split:], small, cfg)
    return model, model.predict(x[split:]), lvef, targets_of(rows)


def test_supervised_ceiling_learns_and_masks_missing_labels():
    model, pred, lvef, t = train_ceiling_on_written_labels()
    lvef_test = lvef[-len(pred["lvef"]):]
    assert t["lvef_class"][0] == -1 and np.isnan(t["lvh"][0])
    assert t["lvef_class"][1] == int(np.searchsorted([40, 50], lvef[1], side="right"))
    assert pred["class_proba"].shape == (len(lvef_test), len(LVEF_CLASSES))
    assert np.allclose(pred["class_proba"].sum(axis=1), 1.0)
    assert np.all((pred["p_lvh"] > 0) & (pred["p_lvh"] < 1))
    assert model.history[-1]["train_loss"] < model.history[0]["train_loss"]
    assert np.corrcoef(pred["lvef"], lvef_test)[0, 1] > 0.5


def test_evaluate_embeddings_without_labelled_train_data_skips_knn_blocks():
    from queries.eval.arms import EmbeddingSet, evaluate_embeddings

    rng = np.random.default_rng(6)
    uids = [f"T{i}" for i in range(6)]
    phenos = {u: _pheno(u, rng, lvef=30.0 if i % 2 else 60.0) for i, u in enumerate(uids)}
    e = rng.standard_normal((6, 8)).astype(np.float32)
    emb = EmbeddingSet(test_ecg=e, test_ecg_study=uids, test_studies=e + 0.01, test_study_uids=uids,
                       archive=np.zeros((0, 8)), archive_uids=[], train_ecg=np.zeros((0, 8)), train_ecg_study=[])
    ev = evaluate_embeddings(emb, phenos, cohort_sd(phenos, FIELDS), EvalSettings())
    assert ev.metrics["classification"] == {}
    assert ev.metrics["retrieval"]["ecg_to_echo"]["exact"]["recall@1"] == 1.0


@pytest.mark.parametrize("arm, step", [("supervised", "train_supervised"), ("ssl", "train_ssl")])
def test_an_ecg_only_arm_without_its_training_step_is_a_config_error(tmp_path, arm, step):
    from e2r.errors import ConfigError

    pairs, ph, _ = _ecg_cohort(tmp_path / "cohort")
    spec = BenchmarkSpec(pairs_csv=pairs, phenotypes_csv=ph, workdir=tmp_path / "work", out_dir=tmp_path / "out",
                         seeds=(0,), arms=(arm,))
    with pytest.raises(ConfigError, match=f"the {arm} arm needs a {step} step"):
        run_benchmark(spec, BenchmarkSteps(store=FakeStore(), index=lambda model_dir, collection: {}))
