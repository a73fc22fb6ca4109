"""The phantom cohort: synthetic paired ECGs and multi-view echo studies in real file formats.

One latent heart per patient (`latent`) drives a dipole ECG (`ecg_synth`) and grey-scale echo
cine loops (`echo_synth`); `writers` puts them into WFDB and DICOM files, `cohort` orchestrates a
whole cohort (phenotype CSV, pairs CSV, manifest) and `check` measures, from the written files,
that the cohort carries the morphology it claims. Everything here is synthetic.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GENERATOR_VERSION", "CohortOptions", "CohortSummary", "check_cohort", "write_cohort"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing a submodule (e.g. latent) does not pull in pydicom/wfdb.
    if name in ("GENERATOR_VERSION", "CohortOptions", "CohortSummary", "write_cohort"):
        from e2r.phantom import cohort

        return getattr(cohort, name)
    if name == "check_cohort":
        from e2r.phantom.check import check_cohort

        return check_cohort
    raise AttributeError(name)
