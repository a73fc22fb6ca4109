"""Readers for public datasets' own file layouts (MIMIC-IV-ECG, MIMIC-IV-ECHO, EchoNet-Dynamic, PTB-XL).

Each module turns one dataset's CSVs and files into e2r's own inputs (pairs CSV, phenotypes CSV,
labelled videos or ECGs); nothing here knows about training, indexing or search.
"""
