"""The evaluation protocol of e2r (SPEC.md, "Evaluation protocol"): the numbers `e2r eval` reports.

    data        the pairs CSV's patient splits, the phenotypes, the ECGs read once
    arms        one arm in arrays: embeddings (or predictions) in, every metric out
    protocol    every arm on the same splits and seeds; aggregation; results.json
    aggregate   mean +/- SD over seeds
    report      report.md tables and the issue's checks; plots: the figures
    run         the composition: trains, pretrains, indexes and evaluates the arms with the real
                trainer and indexer -- the one module of queries/ allowed to import them

The metrics themselves (retrieval, classification, kNN) live in e2r.metrics, shared with training
validation and search. Speed benchmarks are elsewhere (bench/).
"""
