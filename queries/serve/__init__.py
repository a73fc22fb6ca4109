"""`e2r serve`: one long-running process that answers searches over HTTP and serves the viewer.

    create_app(ServeConfig, searcher) -> FastAPI app      queries.serve.app
    save_upload / find_record                             queries.serve.uploads
    PreviewCache (animated GIF per indexed video)         queries.serve.previews
    ecg_for_display (the 12 leads, downsampled, in mV)    queries.serve.ecg_view

The viewer (static/index.html, viewer.js, viewer.css) is plain HTML/JS served by the same app:
no front-end build step.
"""

from queries.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
