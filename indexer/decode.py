"""Decoding one study's videos, as a picklable job for worker processes."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from e2r.echo import StudyInfo, VideoInfo, decode_video
from e2r.errors import DicomReadError


@dataclass(frozen=True)
class DecodeJob:
    """The videos of one study and how to decode them (the preset's echo input)."""

    job_index: int
    paths: tuple[str, ...]
    decode_kwargs: dict[str, Any]  # e2r.presets.EchoEncoderConfig.decode_kwargs()
    # The scan's headers of those videos, so a worker does not parse each header a second time.
    videos: tuple[VideoInfo, ...] = ()

    @classmethod
    def for_study(cls, job_index: int, study: StudyInfo, echo_cfg: Any) -> "DecodeJob":
        return cls(job_index, tuple(v.path for v in study.videos), echo_cfg.decode_kwargs(), tuple(study.videos))


@dataclass
class DecodedStudy:
    job_index: int
    frames: list[np.ndarray] = field(default_factory=list)  # one uint8 array per decoded video
    used: list[int] = field(default_factory=list)           # indices into the study's videos
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    seconds: float = 0.0


def decode_study(job: DecodeJob) -> DecodedStudy:
    """Decode every video of a study; a video that fails is recorded, never raised."""
    t0 = time.perf_counter()
    out = DecodedStudy(job.job_index)
    for i, path in enumerate(job.paths):
        try:
            frames = decode_video(job.videos[i] if job.videos else path, **job.decode_kwargs)
        except DicomReadError as err:
            out.errors.append((path, str(err)))
            continue
        except Exception as err:  # a decoder bug on one file must not end a long run
            out.errors.append((path, f"{path}: cannot decode ({type(err).__name__}: {err})"))
            continue
        out.frames.append(frames)
        out.used.append(i)
    out.seconds = time.perf_counter() - t0
    return out


def decode_worker(conn: Any) -> None:
    """A decode worker process: decode each DecodeJob received on `conn` and send its DecodedStudy back.

    It ends quietly when the pipe does: the parent closed it (normal end) or the parent is gone
    (killed: reading gives EOF, sending a finished study gives a broken pipe). So a killed
    `e2r index` leaves no worker behind, no traceback and, since only plain pipes are used (no
    multiprocessing queues or locks), no semaphores for multiprocessing's resource tracker to
    report as leaked.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends the pipe
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        result = decode_study(job)
        try:
            conn.send(result)
        except OSError:  # BrokenPipeError, ConnectionResetError: nobody left to tell
            return
