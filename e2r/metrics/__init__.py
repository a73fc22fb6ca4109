"""Evaluation metrics shared by training validation, search and the benchmark.

- `e2r.metrics.retrieval`: similarity, exact and phenotype-aware relevance, Recall@k / mAP (ties
  count against the query);
- `e2r.metrics.classification`: macro AUROC/AUPRC, balanced accuracy, F1, regression errors;
- `e2r.metrics.knn`: the similarity-weighted phenotype vote of the nearest labelled studies.
"""
