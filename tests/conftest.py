"""Session-wide fixtures: one tiny paired cohort and one untrained tiny model bundle.

Each is built once per test session (per xdist worker) in a temporary folder; tests treat them as
read-only and write their own outputs under tmp_path. Writers of other inputs live in
tests/helpers/.
"""

from __future__ import annotations

import pytest

from helpers.cohort import write_tiny_cohort


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """12 patients (9 train, 3 val), WFDB ECGs + 16x16 DICOM cine loops + pairs.csv + phenotypes.csv."""
    root = tmp_path_factory.mktemp("tiny_cohort")
    write_tiny_cohort(root, patients=12, seed=2)
    return root


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """An untrained, fixed-seed (0) tiny Echo2ECG bundle folder."""
    from e2r.bundle import save_untrained_bundle

    path = tmp_path_factory.mktemp("tiny_bundle") / "model"
    save_untrained_bundle("tiny", 0, path, note="test session model")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Captured output and logs with the escaped bytes of an undecodable file name (lone
    surrogates, as the fuzz suite's non-UTF-8 folder names give) kept escaped in the report:
    pytest-xdist sends reports as UTF-8 and stops the whole run on a lone surrogate."""
    outcome = yield
    report = outcome.get_result()
    report.sections = [(title, _utf8_safe(text)) for title, text in report.sections]
    if isinstance(report.longrepr, str):
        report.longrepr = _utf8_safe(report.longrepr)


def _utf8_safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
