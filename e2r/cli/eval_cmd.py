"""`e2r eval`: the benchmark (`--benchmark`, on the phantom cohort) or the same metrics for a user's
own model and paired data (`--model MODEL_DIR --pairs PAIRS.csv`).

The protocol lives in queries.eval.protocol and its composition (the real training and indexing)
in queries.eval.run; this command parses the options, calls one of them and prints the result.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from e2r.cli.common import (
    ApiKeyOpt, CollectionOpt, DataDirOpt, EcgNormaliseOpt, GroupByOpt, JsonOpt, QdrantUrlOpt, handle_errors, print_json,
    print_table,
)
from queries.eval.sizes import DEFAULT, QUICK


def register(app: typer.Typer) -> None:
    app.command("eval")(handle_errors(eval_command))


def eval_command(
    benchmark: bool = typer.Option(False, "--benchmark", help="Run the benchmark on a phantom cohort: every arm trained, indexed and evaluated."),
    quick: bool = typer.Option(False, "--quick", help=f"Small benchmark for CI ({QUICK.patients} patients, {QUICK.epochs} epochs, 1 seed; a few minutes on 2 cores)."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help=f"Seeds per arm (0..N-1; default {DEFAULT.seeds}, --quick 1)."),
    patients: Optional[int] = typer.Option(None, "--patients", help=f"Phantom patients (default {DEFAULT.patients}, --quick {QUICK.patients})."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=f"Training epochs of every trained arm (default {DEFAULT.epochs}, --quick {QUICK.epochs})."),
    preset: str = typer.Option("tiny", "--preset", help="Model preset of the benchmark's arms (tiny on CPU; base on a GPU)."),
    ecg_normalise: Optional[str] = EcgNormaliseOpt,
    real_ecgs: Optional[Path] = typer.Option(None, "--real-ecgs", help="--benchmark: real labelled ECGs (PTB-XL's folder, a CinC folder or a labels CSV) scored against every arm's phantom index (default ../shared/data/ecg/ptbxl when it is there)."),
    no_real_ecgs: bool = typer.Option(False, "--no-real-ecgs", help="--benchmark: leave the real labelled ECGs out."),
    arms: Optional[str] = typer.Option(None, "--arms", help="--benchmark: run only these arms, comma-separated (default: all of chance, criteria, random-init, ssl, echo-tower, single-view, mean, attention, supervised), e.g. attention,supervised for an ablation of --ecg-normalise."),
    cohort: Optional[Path] = typer.Option(None, "--cohort", help="Use this phantom cohort folder instead of generating one in --workdir."),
    workdir: Path = typer.Option(Path("e2r-bench"), "--workdir", help="Benchmark folder: cohort, models, caches, store (reused on re-runs)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Evaluate this model bundle on your own paired data (with --pairs)."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Pairs CSV (ecg_path, study_uid, patient_id, days, split) of your data; its test split is evaluated."),
    archive: Optional[Path] = typer.Option(None, "--archive", help="Echo DICOM archive of --pairs (default: the echo/ folder beside the CSV)."),
    phenotypes: Optional[Path] = typer.Option(None, "--phenotypes", help="Phenotype CSV of the studies (default: phenotypes.csv beside the pairs CSV)."),
    group_by: str = GroupByOpt,
    ecg_labels: Optional[Path] = typer.Option(None, "--ecg-labels", help="Labelled ECGs without echo, scored against the index of --collection: PTB-XL's ptbxl_database.csv, a folder of CinC 2021 records (# Dx), or a CSV ecg_path,label[,lvef_le45]."),
    labels_format: Optional[str] = typer.Option(None, "--labels-format", help="Format of --ecg-labels: ptbxl, cinc or csv (default: detected)."),
    folds: Optional[str] = typer.Option(None, "--folds", help="PTB-XL strat_fold values to score with --protocol cross-modal, comma-separated, or 'all' (default 10, its test fold)."),
    protocol: str = typer.Option("cross-modal", "--protocol", help="--ecg-labels protocol: cross-modal (the kNN vote through the echo index of --collection), knn (k = 5, cosine, over the frozen --model's embeddings of the training ECGs) or linear (logistic regression, C chosen on validation). Probe splits: PTB-XL strat_fold 1-8 train / 9 val / 10 test; others a seeded stratified 60/20/20 split, patient-disjoint where patient ids exist; repeated stratified 5-fold x 5 when the test part has fewer than 10 positives or negatives."),
    features: str = typer.Option("embedding", "--features", help="Vectors of --protocol knn|linear: embedding (the L2-normalised shared ECG-echo space e2r search uses) or features (the encoder's pooled output before the projection head)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the AUROC CI of --ecg-labels (seed 0)."),
    k: Optional[int] = typer.Option(None, "--k", help="Labelled neighbours that vote in --ecg-labels (default: the benchmark's 20; --protocol knn: 5)."),
    collection: str = CollectionOpt,
    out: Path = typer.Option(Path("results"), "--out", help="Folder for results.json, report.md and the plots."),
    data_dir: Optional[Path] = DataDirOpt,
    qdrant_url: Optional[str] = QdrantUrlOpt,
    api_key: Optional[str] = ApiKeyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Measure retrieval and phenotype classification against baselines; write results.json, report.md, plots.

    One of three modes:

    - `--benchmark` generates (or reuses) a synthetic phantom cohort and compares, on the same
      splits: chance, a random-init encoder, single-view, mean-pooling and attention-pooling
      (Echo2ECG) alignment to the seed's frozen echo tower (pretrained on the train split's
      measurements), the tower alone (echo -> echo), and a supervised ECG->phenotype ceiling, as
      mean ± SD over seeds.
    - `--model M --pairs P.csv` reports the same metrics for your model on your data's test split.
    - `--ecg-labels LABELS` scores the kNN P(LVH) (and P(LVEF<=45) where labelled) of an index
      (`--collection`, `--data-dir` / `--qdrant-url`, as `e2r search`) on labelled ECGs without
      echo: AUROC with a bootstrap CI, positives/negatives, skipped ECGs by reason. With
      `--protocol knn|linear --model M` it instead fits a probe on the frozen ECG embeddings of
      the labelled training ECGs and scores it on ECGs it never saw (LVH, PTB-XL's MI vs NORM).
    """
    from e2r.errors import ConfigError

    if ecg_labels is not None:
        if benchmark or pairs is not None:
            raise ConfigError("--ecg-labels scores an existing index; drop --benchmark / --pairs")
        if ecg_normalise or real_ecgs or no_real_ecgs or arms:
            raise ConfigError("--ecg-normalise / --real-ecgs / --arms belong to --benchmark; --ecg-labels uses the index's "
                              "model and its ECG input")
        if protocol not in ("cross-modal", "knn", "linear"):
            raise ConfigError(f"--protocol {protocol}: choose one of cross-modal, knn, linear")
        if protocol != "cross-modal":
            return _eval_probe(ecg_labels, labels_format, folds, protocol, features, bootstrap, k, model, out, as_json)
        if features != "embedding":
            raise ConfigError("--features belongs to --protocol knn|linear; drop it for cross-modal")
        return _eval_labels(ecg_labels, labels_format, folds or "10", bootstrap, k, model, collection, out, data_dir,
                            qdrant_url, api_key, as_json)
    if protocol != "cross-modal":
        raise ConfigError("--protocol belongs to --ecg-labels; drop it")
    if benchmark == (model is not None):
        raise ConfigError("choose one: --benchmark (phantom cohort, every arm) or --model MODEL_DIR --pairs PAIRS.csv")
    for flag, value in (("--seeds", seeds), ("--patients", patients), ("--epochs", epochs)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: must be at least 1")
    say = (lambda msg: None) if as_json else (lambda msg: typer.echo(msg, err=True))
    command = "e2r " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "e2r eval"
    from queries.eval.run import run_model_eval, run_phantom_benchmark

    if benchmark:
        size = QUICK if quick else DEFAULT
        if real_ecgs is not None and no_real_ecgs:
            raise ConfigError("choose one: --real-ecgs DIR or --no-real-ecgs")
        result = run_phantom_benchmark(size, seeds, patients, epochs, preset, cohort, workdir, out, data_dir,
                                        qdrant_url, api_key, say, command, progress=not as_json,
                                        ecg_normalise=ecg_normalise, real_ecgs=real_ecgs, score_real=not no_real_ecgs,
                                        arms=_parse_arms(arms))
    else:
        for flag, value in (("--quick", quick), ("--cohort", cohort), ("--ecg-normalise", ecg_normalise),
                            ("--real-ecgs", real_ecgs), ("--no-real-ecgs", no_real_ecgs), ("--arms", arms)):
            if value:
                raise ConfigError(f"{flag} belongs to --benchmark; drop it when evaluating --model")
        if pairs is None:
            raise ConfigError("--model needs --pairs PAIRS.csv (your paired ECG/echo data with a test split)")
        result = run_model_eval(model, pairs, archive, phenotypes, collection, workdir, out, data_dir, qdrant_url,
                                 api_key, say, command, progress=not as_json, group_by=group_by)
    _print_result(result, as_json)


def _parse_arms(value: Optional[str]) -> Optional[tuple[str, ...]]:
    """--arms "a,b" -> ("a", "b") in the benchmark's own order; None: every arm. An unknown name is a
    ConfigError naming the choices."""
    from e2r.errors import ConfigError
    from queries.eval.protocol import ARMS

    if value is None:
        return None
    names = [a.strip() for a in value.split(",") if a.strip()]
    unknown = [a for a in names if a not in ARMS]
    if not names or unknown:
        raise ConfigError(f"--arms {value!r}: unknown arm(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(ARMS)}")
    return tuple(a for a in ARMS if a in names)


def _eval_labels(labels_path: Path, fmt: Optional[str], folds: str, n_boot: int, k: Optional[int],
                 model: Optional[Path], collection: str, out: Path, data_dir: Optional[Path],
                 qdrant_url: Optional[str], api_key: Optional[str], as_json: bool) -> None:
    """`e2r eval --ecg-labels`: read the labels, search them against the collection, report."""
    from e2r.cli.store_opts import open_cli_store
    from e2r.datasets.ecg_labels import LABEL_FORMATS, read_ecg_labels
    from e2r.errors import ConfigError
    from queries.eval.labelled import run_labelled_eval
    from queries.search import Searcher

    if fmt is not None and fmt not in LABEL_FORMATS:
        raise ConfigError(f"--labels-format {fmt}: choose one of {', '.join(LABEL_FORMATS)}")
    if n_boot < 1 or (k is not None and k < 1):
        raise ConfigError(f"--bootstrap {n_boot} / --k {k}: must be at least 1")
    try:
        fold_list = None if folds.strip().lower() == "all" else [int(f) for f in folds.split(",") if f.strip()]
    except ValueError:
        raise ConfigError(f"--folds {folds}: give comma-separated numbers 1-10 or 'all'") from None
    labels = read_ecg_labels(labels_path, fmt, fold_list)
    say = (lambda msg: None) if as_json else (lambda msg: typer.echo(msg, err=True))
    with open_cli_store(data_dir, qdrant_url, api_key) as store:
        loaded = None
        if model is not None:
            from e2r.bundle import load_ecg_encoder

            loaded = load_ecg_encoder(model)
        searcher = Searcher(store, collection, model=loaded)
        result = run_labelled_eval(searcher, labels, out, k=k, n_boot=n_boot, progress=not as_json, say=say)
    res = result.results
    if as_json:
        print_json({**res, "out_files": result.out_files})
        return
    rows = [{"target": t["name"], "auroc": t["auroc"], "ci_low": t["ci_low"], "ci_high": t["ci_high"],
             "positives": t["positives"], "negatives": t["negatives"], "no_estimate": t["no_estimate"]}
            for t in res["targets"].values()]
    print_table(rows, ["target", "auroc", "ci_low", "ci_high", "positives", "negatives", "no_estimate"])
    _print_notes_and_counts(res, result.out_files, "", "scored")


def _eval_probe(labels_path: Path, fmt: Optional[str], folds: Optional[str], protocol: str, features: str,
                n_boot: int, k: Optional[int], model: Optional[Path], out: Path, as_json: bool) -> None:
    """`e2r eval --ecg-labels --protocol knn|linear`: embed the labelled ECGs, fit and score the probe."""
    from e2r.datasets.ecg_labels import LABEL_FORMATS, read_ecg_labels
    from e2r.embed import ARRAYS
    from e2r.errors import ConfigError
    from queries.eval.probes import KNN_K, run_probe_eval

    if fmt is not None and fmt not in LABEL_FORMATS:
        raise ConfigError(f"--labels-format {fmt}: choose one of {', '.join(LABEL_FORMATS)}")
    if model is None:
        raise ConfigError(f"--protocol {protocol} embeds the ECGs with a frozen encoder: give --model MODEL_DIR")
    if folds is not None:
        raise ConfigError(f"--folds belongs to --protocol cross-modal; --protocol {protocol} splits PTB-XL by "
                          "strat_fold itself (1-8 train, 9 validation, 10 test)")
    if features not in ARRAYS:
        raise ConfigError(f"--features {features}: choose one of {', '.join(ARRAYS)}")
    if n_boot < 1 or (k is not None and k < 1):
        raise ConfigError(f"--bootstrap {n_boot} / --k {k}: must be at least 1")
    if k is not None and protocol == "linear":
        raise ConfigError("--k belongs to --protocol knn (or cross-modal); drop it for linear")
    from e2r.bundle import load_ecg_encoder

    labels = read_ecg_labels(labels_path, fmt, None)
    say = (lambda msg: None) if as_json else (lambda msg: typer.echo(msg, err=True))
    result = run_probe_eval(labels, load_ecg_encoder(model), out, protocol, features, k or KNN_K, n_boot,
                            progress=not as_json, say=say)
    res = result.results
    if as_json:
        print_json({**res, "out_files": result.out_files})
        return
    from queries.eval.probes import table_rows

    print_table(table_rows(res))
    _print_notes_and_counts(res, result.out_files, f"{protocol} probe on `{features}`; ", "embedded")


def _print_notes_and_counts(res: dict, out_files: list, lead: str, done: str) -> None:
    """The lines under a labelled-ECG table: each target's note, then how many ECGs were
    `done` (scored, embedded) of those listed, the skipped by reason, and the files written."""
    for t in res["targets"].values():
        if t.get("note"):
            typer.echo(f"{t['name']}: {t['note']}")
    e = res["ecgs"]
    skipped = ", ".join(f"{r} {n}" for r, n in sorted(e["skipped"].items())) or "none"
    typer.echo(f"\n{lead}{e['scored']} of {e['listed']} ECGs {done} (skipped: {skipped}); "
               f"written: {', '.join(out_files)}")


def _print_result(result: Any, as_json: bool) -> None:
    from queries.eval.report import feature_summary, markdown_summary

    res = result.results
    if as_json:
        print_json({**res, "out_files": result.out_files})
        return
    print_table(markdown_summary(res))
    typer.echo("")
    features = feature_summary(res)
    if features:
        typer.echo("As a feature extractor (probes on the frozen ECG features of the test ECGs):")
        print_table(features)
        typer.echo("")
    for c in res.get("claims", []):
        verdict = {True: "holds", False: "does NOT hold", None: "not measured"}[c["holds"]]
        typer.echo(f"{c['check']}: {verdict}")
    label = "synthetic phantom data" if res.get("synthetic") else res.get("data")
    typer.echo(f"\n{label}; wall time {res['wall_time_s']:.0f} s; written: {', '.join(result.out_files)}")
