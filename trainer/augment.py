"""ECG augmentations of the Echo2ECG paper (taken over from OTiS): Fourier-surrogate phase noise,
multiplicative jitter, amplitude rescaling, time flip and sign flip.

Each works on one preprocessed record, float32 (12, N), with a numpy Generator so that a training
run is reproducible (the loader derives one Generator per (seed, epoch, item)). Every augmentation
is a setting with a probability; the magnitudes follow the OTiS training scripts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from e2r.errors import ConfigError


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and magnitudes of the ECG augmentations (applied in the order listed)."""

    surrogate_p: float = 0.5          # probability of Fourier-surrogate phase noise
    surrogate_noise: float = 0.075    # phase noise magnitude, fraction of 2*pi per frequency bin
    jitter_p: float = 0.5             # probability of multiplicative jitter
    jitter_sigma: float = 0.03        # std of the per-sample factor around 1
    rescale_p: float = 0.5            # probability of amplitude rescaling
    rescale_sigma: float = 0.2        # std of log(scale); one factor per record (keeps lead ratios)
    time_flip_p: float = 0.33         # probability of reversing time
    sign_flip_p: float = 0.33         # probability of negating the signal
    enabled: bool = True              # False switches every augmentation off

    def validate(self) -> None:
        """Raise ConfigError naming the setting when a probability or magnitude is out of range."""
        for name, value in asdict(self).items():
            if name == "enabled":
                continue
            if name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise ConfigError(f"augmentation {name}={value}: a probability must lie in [0, 1]")
            if not name.endswith("_p") and value < 0:
                raise ConfigError(f"augmentation {name}={value}: a magnitude must be >= 0")


def fourier_surrogate(x: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Add random phase noise in [0, 2*pi*noise) to every frequency bin, keeping the amplitudes.

    The same phase shift is applied to all leads so that lead relations (III = II - I, ...) hold.
    The DC and Nyquist bins keep their phase: they are real, and rotating them would change the
    amplitude spectrum after the inverse transform.
    """
    n = x.shape[-1]
    spec = np.fft.rfft(x, axis=-1)  # (12, n//2+1)
    phase = rng.uniform(0.0, 2.0 * np.pi * noise, size=spec.shape[-1])
    phase[0] = 0.0
    if n % 2 == 0:
        phase[-1] = 0.0
    return np.fft.irfft(spec * np.exp(1j * phase), n=n, axis=-1).astype(x.dtype, copy=False)


def multiplicative_jitter(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply every sample by an independent factor drawn from N(1, sigma)."""
    return (x * rng.normal(1.0, sigma, size=x.shape)).astype(x.dtype, copy=False)


def rescale(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply the whole record by one log-normal factor exp(N(0, sigma))."""
    return (x * np.exp(rng.normal(0.0, sigma))).astype(x.dtype, copy=False)


def time_flip(x: np.ndarray) -> np.ndarray:
    """Reverse the time axis."""
    return np.ascontiguousarray(x[..., ::-1])


def sign_flip(x: np.ndarray) -> np.ndarray:
    """Negate the signal."""
    return -x


def augment_ecg(x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Apply each enabled augmentation with its probability; returns a new float32 (12, N) array."""
    if not cfg.enabled:
        return x
    out = np.array(x, dtype=np.float32, copy=True)
    if rng.random() < cfg.surrogate_p:
        out = fourier_surrogate(out, cfg.surrogate_noise, rng)
    if rng.random() < cfg.jitter_p:
        out = multiplicative_jitter(out, cfg.jitter_sigma, rng)
    if rng.random() < cfg.rescale_p:
        out = rescale(out, cfg.rescale_sigma, rng)
    if rng.random() < cfg.time_flip_p:
        out = time_flip(out)
    if rng.random() < cfg.sign_flip_p:
        out = sign_flip(out)
    return out
