"""Ideal-input diagnosis of the multi-view claim (issue 21): a trained model's study vectors made
from the whole study, against the same model's study vectors made from one view only.

    python bench/probe_view_restricted.py --model BUNDLE --cohort COHORT [--restrict all A4C one]

Every arm of the benchmark indexes a study from all its clips (single-view only trains on one).
This keeps the model fixed and restricts what its study vector sees, per condition:
`all` (the benchmark's), a view name (only that view's clips; studies without it are left out of
the gallery and of the voters), or `one` (one clip per study, drawn with seed 0). For each
condition: ECG -> echo LVEF mAP with the paper's per-phenotype relevance (test ECGs against the
test studies) and the cross-modal kNN LVEF<=45 and LVH AUROC (the 20 nearest train/val studies
vote, softmax, temperature 0.1, as `e2r search`). Test ECGs whose paired study has no vector under
a condition are left out (n is printed). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def study_videos(echo_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """{study_uid: [(view, path), ...]} from the DICOM headers of a phantom archive."""
    import pydicom

    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path in sorted(echo_dir.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        out[str(ds.StudyInstanceUID)].append((str(ds.SeriesDescription), str(path)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--cohort", type=Path, required=True)
    ap.add_argument("--restrict", nargs="+", default=["all", "A4C", "A2C", "PLAX", "PSAX", "one"])
    args = ap.parse_args(argv)

    import torch

    from e2r.bundle import load_model
    from e2r.echo.decode import decode_video
    from e2r.ecg import read_for_model
    from e2r.encode import embed_videos, encode_ecg
    from e2r.metrics.classification import binary_metrics
    from e2r.metrics.knn import knn_predict, label_arrays
    from e2r.metrics.retrieval import per_phenotype_relevance, retrieval_metrics, similarity_matrix
    from e2r.pairs import read_pairs
    from e2r.phenotypes import cohort_sd, lvef_le45_flag, phenotype_arrays, read_phenotypes

    loaded = load_model(args.model)
    model = loaded.model
    pheno, _ = read_phenotypes(args.cohort / "phenotypes.csv")
    pairs = read_pairs(args.cohort / "pairs.csv")
    split_of = {p.study_uid: p.split for p in pairs}
    videos = study_videos(args.cohort / "echo")
    uids = sorted(u for u in videos if u in split_of and u in pheno)

    flat = [(u, view, path) for u in uids for view, path in videos[u]]
    kw = model.preset.echo.decode_kwargs()
    print(f"decoding and embedding {len(flat)} videos of {len(uids)} studies", file=sys.stderr)
    emb = np.concatenate([embed_videos(model, [decode_video(p, **kw) for _, _, p in flat[i:i + 256]])
                          for i in range(0, len(flat), 256)])
    by_study: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
    for (u, view, _), e in zip(flat, emb):
        by_study[u].append((view, e))

    test = [p for p in pairs if p.split == "test" and p.ecg_path and p.study_uid in by_study]
    ecg = encode_ecg(model, [read_for_model(p.ecg_path, model.preset.ecg_preprocess)[1] for p in test])
    sd = cohort_sd(pheno, ("lvef",))
    rng = np.random.default_rng(0)
    one_pick = {u: int(rng.integers(len(v))) for u, v in sorted(by_study.items())}

    def study_vectors(cond: str) -> dict[str, np.ndarray]:
        out = {}
        with torch.no_grad():
            model.eval()
            for u, items in by_study.items():
                if cond == "all":
                    keep = [e for _, e in items]
                elif cond == "one":
                    keep = [items[one_pick[u]][1]]
                else:
                    keep = [e for v, e in items if v == cond]
                if not keep:
                    continue
                x = torch.from_numpy(np.stack(keep))[None]
                out[u] = model.encode_study(x, torch.ones(1, len(keep), dtype=torch.bool))[0].float().numpy()
        return out

    print(f"model {loaded.hash}; test ECGs {len(test)}")
    print("| study vector from | test ECGs | gallery (test studies) | voters (train/val) | LVEF mAP | "
          "LVEF<=45 AUROC | LVH AUROC |")
    print("|---|---|---|---|---|---|---|")
    for cond in args.restrict:
        vec = study_vectors(cond)
        q = [i for i, p in enumerate(test) if p.study_uid in vec]
        gal = [u for u in uids if split_of[u] == "test" and u in vec]
        voters = [u for u in uids if split_of[u] in ("train", "val") and u in vec]
        qe = ecg[q]
        qrows = [pheno[test[i].study_uid] for i in q]
        sim = similarity_matrix(qe, np.stack([vec[u] for u in gal]))
        rel = per_phenotype_relevance(phenotype_arrays(qrows, ("lvef",)),
                                      phenotype_arrays([pheno[u] for u in gal], ("lvef",)), ("lvef",), sd=sd)
        lvef_map = retrieval_metrics(sim, rel["lvef"]).to_dict()["map"]
        vsim = similarity_matrix(qe, np.stack([vec[u] for u in voters]))
        pred = knn_predict(vsim, label_arrays([pheno[u] for u in voters]), k=20, weighting="softmax",
                           temperature=0.1)
        truth = label_arrays(qrows)
        le45 = binary_metrics(lvef_le45_flag(truth["lvef"]), pred.p_le45)["auroc"]
        lvh = binary_metrics(truth["lvh"], pred.p_lvh)["auroc"]
        print(f"| {cond} | {len(q)} | {len(gal)} | {len(voters)} | {lvef_map:.3f} | {le45:.3f} | {lvh:.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
