"""The phantom cohort: synthetic paired ECGs and multi-view echo studies in real file formats.

One latent heart per patient (`latent`) drives a dipole ECG (`ecg_synth`) and grey-scale echo
cine loops (`echo_synth`); `writers` puts them into WFDB and DICOM files, `cohort` orchestrates a
whole cohort (phenotype CSV, pairs CSV, manifest) and `check` measures, from the written files,
that the cohort carries the morphology it claims. Everything here is synthetic.
"""

from __future__ import annotations

from e2r.phantom.cohort import GENERATOR_VERSION, CohortOptions, CohortSummary, write_cohort

__all__ = ["GENERATOR_VERSION", "CohortOptions", "CohortSummary", "write_cohort"]
