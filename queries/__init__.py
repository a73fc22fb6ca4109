"""Answers and measurements: `search` answers an ECG query against an indexed archive; `eval`
holds the evaluation protocol behind `e2r eval` (queries.eval)."""
