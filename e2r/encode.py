"""The one encode path: numpy inputs -> embeddings, used by training validation, the indexer and
search alike. Every function runs the model in eval mode under torch.no_grad (bf16 autocast on
CUDA) and returns float32 numpy arrays.

`model` may be an `Echo2ECG` or a `LoadedModel` from `e2r.bundle.load_model`; the ECG functions
also take an `ECGGraph` (`e2r.bundle.load_ecg_encoder`: the bundle's ONNX graph on ONNX Runtime),
and then torch is never imported: this module imports it only inside the functions that run it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from e2r.ecg.preprocess import PreprocessedECG
from e2r.errors import DataError
from e2r.presets import EchoEncoderConfig

if TYPE_CHECKING:
    import torch

ECGInput = PreprocessedECG | np.ndarray


def _unwrap(model):
    return getattr(model, "model", model)


def _device(model, device=None) -> torch.device:
    import torch

    if device is not None:
        return torch.device(device)
    return next(model.parameters()).device


@contextlib.contextmanager
def _inference(model, device: torch.device):
    import torch

    was_training = model.training
    model.eval()
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    try:
        with torch.no_grad(), autocast:
            yield
    finally:
        model.train(was_training)


def normalize_videos(videos: torch.Tensor, echo_cfg: EchoEncoderConfig) -> torch.Tensor:
    """uint8 frames (..., F, H, W) or (..., F, H, W, 3) -> float (..., F, C, H, W), normalised.

    Grey input for an rgb encoder is repeated to 3 channels; rgb input for a grey encoder is
    averaged. Works on any device and any leading batch dims (e.g. (B, V) in training).
    """
    import torch

    rgb_in = videos.shape[-1] == 3 and videos.ndim >= 4
    x = videos.float()
    if rgb_in:
        x = x.movedim(-1, -3)  # (..., F, 3, H, W)
    else:
        x = x.unsqueeze(-3)  # (..., F, 1, H, W)
    if echo_cfg.channels == 1 and rgb_in:
        x = x.mean(dim=-3, keepdim=True)  # (..., F, 1, H, W)
    elif echo_cfg.channels == 3 and not rgb_in:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])  # (..., F, 3, H, W)
    mean = torch.tensor(echo_cfg.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.tensor(echo_cfg.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - mean) / std  # (..., F, C, H, W)


def videos_to_tensor(videos: Sequence[np.ndarray], echo_cfg: EchoEncoderConfig) -> torch.Tensor:
    """Decoded videos (uint8 (F,H,W) or (F,H,W,3), from decode_video with the preset's settings)
    -> float tensor (N, F, C, H, W), normalised. DataError when a video has another frame count
    or size than the preset's echo encoder expects."""
    import torch

    want = (echo_cfg.n_frames, *echo_cfg.size)
    for i, v in enumerate(videos):
        if v.ndim not in (3, 4) or tuple(v.shape[:3]) != want or (v.ndim == 4 and v.shape[3] != 3):
            raise DataError(f"video {i}: shape {tuple(v.shape)} does not match the model's echo input "
                            f"{want} (+3 for rgb); decode with preset.echo.decode_kwargs()")
    if not len(videos):
        return torch.empty(0, echo_cfg.n_frames, echo_cfg.channels, *echo_cfg.size)
    grey = [v if v.ndim == 3 else v.mean(axis=-1).astype(np.uint8) for v in videos]
    if echo_cfg.channels == 1 or all(v.ndim == 3 for v in videos):
        return normalize_videos(torch.from_numpy(np.stack(grey)), echo_cfg)
    rgb = [v if v.ndim == 4 else np.repeat(v[..., None], 3, axis=-1) for v in videos]
    return normalize_videos(torch.from_numpy(np.stack(rgb)), echo_cfg)


def ecg_batch(ecgs: Sequence[ECGInput]) -> np.ndarray:
    """Preprocessed ECGs (PreprocessedECG or float (12, N) arrays, all the same N) -> float32 (B, 12, N)."""
    arrays = [np.asarray(e.signal if isinstance(e, PreprocessedECG) else e, dtype=np.float32)
              for e in ecgs]
    if not arrays:
        raise DataError("no ECGs to encode")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2 or arrays[0].shape[0] != 12:
        raise DataError(f"ECGs must all be (12, N) arrays of one length, got shapes {sorted(shapes)}; "
                        "preprocess them with the model's preset.ecg_preprocess")
    return np.stack(arrays)  # (B, 12, N)


def ecg_to_tensor(ecgs: Sequence[ECGInput]) -> torch.Tensor:
    """Preprocessed ECGs (PreprocessedECG or float (12, N) arrays, all the same N) -> tensor (B, 12, N)."""
    import torch

    return torch.from_numpy(ecg_batch(ecgs))


def encode_ecg(model, ecgs: Sequence[ECGInput], batch_size: int = 128, device=None) -> np.ndarray:
    """Preprocessed ECGs -> (B, D) float32 L2-normalised embeddings."""
    return encode_ecg_features(model, ecgs, batch_size, device)[1]


def encode_ecg_features(model, ecgs: Sequence[ECGInput], batch_size: int = 128,
                        device=None) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed ECGs -> (the ECG encoder's pooled features (B, C) float32, before the projection
    head; the (B, D) float32 L2-normalised shared-space embeddings `encode_ecg` returns).

    The one ECG encode path of every caller; behind it runs torch (an Echo2ECG or LoadedModel) or
    ONNX Runtime (an ECGGraph, the bundle's exported graph; `device` does not apply to it)."""
    from e2r.ecg_graph import ECGGraph

    preset = model.preset
    expected = preset.ecg_samples
    x = ecg_batch(ecgs)  # (B, 12, N)
    if x.shape[-1] != expected:
        raise DataError(f"ECGs have {x.shape[-1]} samples per lead, the model expects {expected} "
                        f"({preset.ecg_preprocess.fs:g} Hz x {preset.ecg_preprocess.window_s:g} s); "
                        "preprocess with the model's preset.ecg_preprocess")
    if isinstance(model, ECGGraph):
        parts = [model.run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]  # [((b, C), (b, D))]
    else:
        parts = _encode_ecg_torch(_unwrap(model), x, batch_size, device)
    return np.concatenate([f for f, _ in parts]), np.concatenate([z for _, z in parts])


def _encode_ecg_torch(model, x: np.ndarray, batch_size: int, device) -> list[tuple[np.ndarray, np.ndarray]]:
    """(B, 12, N) through an Echo2ECG in batches -> [(features (b, C), embedding (b, D))] float32."""
    import torch

    dev = _device(model, device)
    parts = []
    with _inference(model, dev):
        for i in range(0, len(x), batch_size):
            f, z = model.encode_ecg_features(torch.from_numpy(x[i:i + batch_size]).to(dev))  # (b, C), (b, D)
            parts.append((f.float().cpu().numpy(), z.float().cpu().numpy()))
    return parts


def embed_videos(model, videos: Sequence[np.ndarray], batch_size: int = 32, device=None) -> np.ndarray:
    """Decoded videos -> (N, E) float32 per-video features of the model's video encoder."""
    model = _unwrap(model)
    return encode_videos(model.video_encoder, model.preset.echo, videos, batch_size, device)


def encode_videos(encoder: torch.nn.Module, echo_cfg: EchoEncoderConfig, videos: Sequence[np.ndarray],
                  batch_size: int = 32, device=None) -> np.ndarray:
    """Decoded videos -> (N, E) float32 through a per-video encoder alone (an Echo2ECG's, or an
    echo tower's, e2r.echo_tower), in eval mode without gradients."""
    import torch

    dev = _device(encoder, device)
    out = []
    with _inference(encoder, dev):
        for i in range(0, len(videos), batch_size):
            x = videos_to_tensor(videos[i:i + batch_size], echo_cfg).to(dev)
            out.append(encoder(x).float().cpu())
    if not out:
        return np.zeros((0, echo_cfg.out_dim), dtype=np.float32)
    return torch.cat(out).numpy()


def encode_study_embeddings(model, view_embs: Sequence[np.ndarray], batch_size: int = 256,
                            device=None) -> np.ndarray:
    """Per-study view embeddings (V_i, E) -> (B, D) study embeddings (padded + masked)."""
    import torch

    model = _unwrap(model)
    dev = _device(model, device)
    for i, v in enumerate(view_embs):
        if np.ndim(v) != 2 or len(v) == 0:
            raise DataError(f"study {i}: needs at least one video embedding of shape (V, E), "
                            f"got shape {np.shape(v)}")
    out = []
    with _inference(model, dev):
        for start in range(0, len(view_embs), batch_size):
            chunk = view_embs[start:start + batch_size]
            v_max = max(len(v) for v in chunk)
            emb = np.zeros((len(chunk), v_max, chunk[0].shape[1]), dtype=np.float32)
            mask = np.zeros((len(chunk), v_max), dtype=bool)
            for j, v in enumerate(chunk):
                emb[j, :len(v)] = v
                mask[j, :len(v)] = True
            z = model.encode_study(torch.from_numpy(emb).to(dev), torch.from_numpy(mask).to(dev))
            out.append(z.float().cpu())
    if not out:
        return np.zeros((0, model.preset.embed_dim), dtype=np.float32)
    return torch.cat(out).numpy()


def encode_echo_studies(model, studies: Sequence, batch_size: int = 32, device=None) -> np.ndarray:
    """Studies -> (B, D) embeddings. Each study is a list of decoded videos, or a float (V, E)
    array of view embeddings already computed by `embed_videos` (e.g. cached EchoPrime features)."""
    model = _unwrap(model)
    flat: list[np.ndarray] = []
    spans: list[tuple[int, int] | np.ndarray] = []
    for i, study in enumerate(studies):
        if isinstance(study, np.ndarray) and study.ndim == 2 and study.dtype.kind == "f":
            spans.append(study)
        elif len(study) == 0:
            raise DataError(f"study {i}: has no videos; a study needs at least one")
        else:
            spans.append((len(flat), len(flat) + len(study)))
            flat.extend(study)
    emb = embed_videos(model, flat, batch_size=batch_size, device=device)  # (sum V_i, E)
    view_embs = [s if isinstance(s, np.ndarray) else emb[s[0]:s[1]] for s in spans]
    return encode_study_embeddings(model, view_embs, device=device)


def encode_echo_study(model, videos: Sequence[np.ndarray], device=None) -> np.ndarray:
    """One study's decoded videos -> (D,) float32 L2-normalised embedding."""
    return encode_echo_studies(model, [list(videos)], device=device)[0]
