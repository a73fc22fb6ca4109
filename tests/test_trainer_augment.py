"""ECG augmentations on arrays: shapes kept, flips exact, the surrogate keeps the spectrum."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from e2r.errors import ConfigError
from trainer.augment import (AugmentConfig, augment_ecg, fourier_surrogate, multiplicative_jitter,
                             rescale, sign_flip, time_flip)


@pytest.fixture
def ecg():
    rng = np.random.default_rng(0)
    t = np.arange(1000) / 100
    x = np.sin(2 * np.pi * 1.2 * t)[None, :] * np.linspace(0.5, 2, 12)[:, None]
    return (x + 0.1 * rng.standard_normal((12, 1000))).astype(np.float32)


@pytest.mark.parametrize("n", [1000, 999])
def test_surrogate_keeps_amplitude_spectrum(n):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, n)).astype(np.float32)
    y = fourier_surrogate(x, 0.5, np.random.default_rng(2))
    assert y.shape == x.shape and y.dtype == np.float32
    assert not np.allclose(x, y)
    np.testing.assert_allclose(np.abs(np.fft.rfft(y)), np.abs(np.fft.rfft(x)), rtol=1e-3, atol=1e-3)


def test_surrogate_keeps_lead_relations(ecg):
    ecg[2] = ecg[1] - ecg[0]  # III = II - I
    y = fourier_surrogate(ecg, 0.3, np.random.default_rng(3))
    np.testing.assert_allclose(y[2], y[1] - y[0], atol=1e-4)


def test_zero_noise_surrogate_is_identity(ecg):
    np.testing.assert_allclose(fourier_surrogate(ecg, 0.0, np.random.default_rng(0)), ecg, atol=1e-5)


def test_flips_are_exact(ecg):
    np.testing.assert_array_equal(time_flip(ecg), ecg[:, ::-1])
    np.testing.assert_array_equal(time_flip(time_flip(ecg)), ecg)
    np.testing.assert_array_equal(sign_flip(ecg), -ecg)


def test_jitter_and_rescale(ecg):
    rng = np.random.default_rng(4)
    j = multiplicative_jitter(ecg, 0.03, rng)
    assert j.shape == ecg.shape
    ratio = j / ecg
    assert abs(ratio.mean() - 1) < 0.01 and 0.02 < ratio.std() < 0.04
    r = rescale(ecg, 0.2, rng)
    k = r / ecg
    assert r.shape == ecg.shape and np.allclose(k, k.flat[0], rtol=1e-5) and k.flat[0] > 0


def test_augment_ecg_probabilities(ecg):
    off = AugmentConfig(surrogate_p=0, jitter_p=0, rescale_p=0, time_flip_p=0, sign_flip_p=0)
    np.testing.assert_array_equal(augment_ecg(ecg, off, np.random.default_rng(0)), ecg)
    only_sign = dataclasses.replace(off, sign_flip_p=1.0)
    np.testing.assert_array_equal(augment_ecg(ecg, only_sign, np.random.default_rng(0)), -ecg)
    disabled = dataclasses.replace(AugmentConfig(), enabled=False)
    assert augment_ecg(ecg, disabled, np.random.default_rng(0)) is ecg
    a = augment_ecg(ecg, AugmentConfig(), np.random.default_rng(7))
    b = augment_ecg(ecg, AugmentConfig(), np.random.default_rng(7))
    assert a.shape == ecg.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # same seed, same augmentation


def test_augment_does_not_modify_input(ecg):
    before = ecg.copy()
    augment_ecg(ecg, AugmentConfig(surrogate_p=1, jitter_p=1, rescale_p=1, time_flip_p=1,
                                   sign_flip_p=1), np.random.default_rng(0))
    np.testing.assert_array_equal(ecg, before)


def test_bad_probability_names_setting():
    with pytest.raises(ConfigError, match="jitter_p"):
        AugmentConfig(jitter_p=1.5).validate()
