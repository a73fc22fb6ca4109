"""Writers of small test inputs (DICOM videos and ECGs, tiny paired cohorts), shared by the tests."""
