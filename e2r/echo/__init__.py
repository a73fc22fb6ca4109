"""Echo input: scan a DICOM archive into studies, read one video's header, decode its frames.

    scan_archive(root) -> ArchiveScan of StudyInfo(videos: VideoInfo...)   e2r.echo.archive
    read_video_header(path) -> VideoInfo                                    e2r.echo.header
    decode_video(path | VideoInfo, n_frames, size, fps, color) -> uint8     e2r.echo.decode
    parse_view(text) -> "A4C" | "PLAX" | ... | None                         e2r.echo.views
"""

from e2r.echo.archive import ArchiveScan, StudyInfo, is_dicom_file, scan_archive
from e2r.echo.decode import decode_video, sample_indices
from e2r.echo.header import VideoInfo, read_video_header
from e2r.echo.views import parse_view

__all__ = ["ArchiveScan", "StudyInfo", "VideoInfo", "decode_video", "is_dicom_file", "parse_view",
           "read_video_header", "sample_indices", "scan_archive"]
