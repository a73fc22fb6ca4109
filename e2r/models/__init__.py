"""e2r's models: the ECG ViT, the echo video encoders, study aggregation and Echo2ECG."""

from e2r.models.echo2ecg import Echo2ECG

__all__ = ["Echo2ECG"]
