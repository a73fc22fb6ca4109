"""e2r: find echo studies that look like the heart behind an ECG (Echo2ECG alignment + Qdrant)."""

__version__ = "0.2.0"
