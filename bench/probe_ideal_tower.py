"""Ideal-input diagnosis of the multi-view claim (issue 21): align the ECG to an ideal echo tower
made from the segment scores, where each view sees exactly the segments it cuts.

    python bench/probe_ideal_tower.py --cohort COHORT --tower TOWER_DIR --cache CACHE --out DIR \
        [--arms single-view mean attention] [--seeds 0] [--epochs 30]

The per-video "embedding" of a clip of view V is the study's ASE wall-motion scores of the
segments V cuts (e2r.phantom.regional.VIEW_SEGMENTS; (score - 1) / 3 in the segment's slot, 0
elsewhere) and a one-hot of V, zero-padded to the tower's width. No clip noise, no global LV
information beyond what the segments carry: one view holds part of the regional truth, the whole
study all 17 segments. The segment scores are replayed from the generator (e2r synth writes only
their WMSI and territory): a generator version 2 cohort of `e2r synth`'s layout, checked against
its phenotypes.csv. Each arm trains exactly as the benchmark's (same config, `train(data=...)`),
with the cached tower embeddings swapped for these. Then, on the test split: ECG -> echo
wall-motion mAP (same territory or WMSI within 0.5 SD) and LVEF mAP (paper's rule), and the
cross-modal kNN LVEF<=45 AUROC, with the study vector from all clips and, for comparison, from one
random clip. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VIEWS = ("A4C", "A2C", "PLAX", "PSAX")


def replay_scores(cohort: Path) -> dict[str, tuple[int, ...]]:
    """{study_uid: 17 ASE scores} of a version 2 cohort, replayed from its seed (the latent draws
    come before any rendering in e2r.phantom.cohort._make_patient)."""
    from e2r.phantom import latent_v2
    from e2r.phantom.cohort import patient_id_for, study_uid_for

    manifest = json.loads((cohort / "manifest.json").read_text())
    if not str(manifest.get("version", "")).startswith("2"):
        raise SystemExit(f"{cohort}: generator version {manifest.get('version')}, need 2")
    seed, n = int(manifest["seed"]), int(manifest["counts"]["patients"])
    repeat = float(manifest["options"]["repeat_fraction"])
    out = {}
    for i, seq in enumerate(np.random.SeedSequence(seed).spawn(n)):
        rng = np.random.default_rng(seq)
        pid = patient_id_for(i)
        base = latent_v2.draw_baseline_exam(rng)
        rng.integers(0, 3650)
        exams = [base]
        if rng.random() < repeat:
            exams.append(latent_v2.draw_repeat_exam(rng, base, int(rng.integers(60, 900))))
        for e, exam in enumerate(exams):
            out[study_uid_for(seed, pid, 50000000 + i * 10 + e)] = tuple(exam.wall_motion)
    return out


def ideal_vector(scores: tuple[int, ...], view: str, dim: int) -> np.ndarray:
    """The ideal per-clip embedding of a clip of `view` of a study with these scores."""
    from e2r.phantom.regional import VIEW_SEGMENTS

    v = np.zeros(dim, dtype=np.float32)
    for s in VIEW_SEGMENTS[view]:
        v[s] = (scores[s] - 1) / 3.0
    v[17 + VIEWS.index(view)] = 1.0
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", type=Path, required=True)
    ap.add_argument("--tower", type=Path, required=True, help="the benchmark's echo tower of the seed (its width, its cache)")
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--arms", nargs="+", default=["single-view", "mean", "attention"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args(argv)

    import torch

    from e2r.bundle import load_model
    from e2r.echo import scan_archive
    from e2r.ecg import read_for_model
    from e2r.encode import encode_ecg
    from e2r.metrics.classification import binary_metrics
    from e2r.metrics.knn import knn_predict, label_arrays
    from e2r.metrics.retrieval import (per_phenotype_relevance, retrieval_metrics, similarity_matrix,
                                       wall_motion_relevance)
    from e2r.models import Echo2ECG
    from e2r.pairs import read_pairs
    from e2r.phenotypes import cohort_sd, lvef_le45_flag, phenotype_arrays, read_phenotypes
    from trainer.align import model_preset, train
    from trainer.config import make_train_config
    from trainer.paired_data import load_paired_data, training_videos

    scores = replay_scores(args.cohort)
    pheno, _ = read_phenotypes(args.cohort / "phenotypes.csv")
    bad = [u for u, p in pheno.items() if u not in scores
           or abs(np.mean(scores[u]) - float(p.get("wmsi") or np.nan)) > 0.01]
    if bad:
        raise SystemExit(f"replayed segment scores disagree with phenotypes.csv for {len(bad)} studies")
    pairs = read_pairs(args.cohort / "pairs.csv")
    split_of = {p.study_uid: p.split for p in pairs}
    studies = {s.study_uid: s for s in scan_archive(args.cohort / "echo", progress=False).studies}
    sd = cohort_sd(pheno, ("lvef", "wmsi"))
    test = [p for p in pairs if p.split == "test" and p.ecg_path and p.study_uid in studies]
    gal = sorted(u for u in studies if split_of.get(u) == "test")
    voters = sorted(u for u in studies if split_of.get(u) in ("train", "val"))
    rng = np.random.default_rng(0)
    one_pick = {u: int(rng.integers(len(studies[u].videos))) for u in sorted(studies)}

    print("| arm | seed | study vector from | wall-motion mAP | LVEF mAP | LVEF<=45 AUROC | best epoch |")
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        data = None
        for arm in args.arms:
            out_dir = args.out / f"{arm}-seed{seed}"
            cfg = make_train_config(args.cohort, out_dir, preset="tiny", aggregation=arm, epochs=args.epochs,
                                    seed=seed, cache_dir=str(args.cache), progress=False,
                                    echo_encoder=str(args.tower))
            if data is None:
                model_p, source = model_preset(cfg)
                embedder = Echo2ECG(model_p)
                embedder.video_encoder.load_state_dict(source.encoder_state)
                real = load_paired_data(cfg, model_p, embedder=embedder, encoder_id=source.hash)
                dim = real.view_emb.shape[1]
                paths = training_videos(pairs, studies)
                view_of = {str(v.path): (u, v.view) for u, s in studies.items() for v in s.videos}
                ideal = np.stack([ideal_vector(scores[view_of[p][0]], view_of[p][1], dim) for p in paths])
                data = dataclasses.replace(real, view_emb=ideal)
            result = train(cfg, data=data)
            model = load_model(out_dir).model
            ecg = encode_ecg(model, [read_for_model(p.ecg_path, model.preset.ecg_preprocess)[1] for p in test])
            qrows = [pheno[p.study_uid] for p in test]
            for cond in ("all", "one"):
                vec = {}
                with torch.no_grad():
                    model.eval()
                    for u in gal + voters:
                        vids = studies[u].videos if cond == "all" else [studies[u].videos[one_pick[u]]]
                        x = torch.from_numpy(np.stack([ideal_vector(scores[u], v.view, dim) for v in vids]))[None]
                        vec[u] = model.encode_study(x, torch.ones(1, len(vids), dtype=torch.bool))[0].float().numpy()
                sim = similarity_matrix(ecg, np.stack([vec[u] for u in gal]))
                grows = [pheno[u] for u in gal]
                wm = wall_motion_relevance(phenotype_arrays(qrows, ("wmsi",))["wmsi"],
                                           phenotype_arrays(grows, ("wmsi",))["wmsi"],
                                           [r.get("territory") for r in qrows], [r.get("territory") for r in grows], sd=sd)
                lv = per_phenotype_relevance(phenotype_arrays(qrows, ("lvef",)), phenotype_arrays(grows, ("lvef",)),
                                             ("lvef",), sd=sd)["lvef"]
                pred = knn_predict(similarity_matrix(ecg, np.stack([vec[u] for u in voters])),
                                   label_arrays([pheno[u] for u in voters]), k=20, weighting="softmax", temperature=0.1)
                le45 = binary_metrics(lvef_le45_flag(label_arrays(qrows)["lvef"]), pred.p_le45)["auroc"]
                print(f"| {arm} | {seed} | {'all clips' if cond == 'all' else 'one random clip'} | "
                      f"{retrieval_metrics(sim, wm).to_dict()['map']:.3f} | "
                      f"{retrieval_metrics(sim, lv).to_dict()['map']:.3f} | {le45:.3f} | {result.best_epoch} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
