"""Session options shared by the detector's and the classifier's onnxruntime sessions."""

from __future__ import annotations


def session_options(threads: int | None = None):
    """Quiet options whose threads sleep between runs. Each session has its own thread pool whose workers
    spin-wait after a run; `birds identify` alternates detector and classifier, so the idle pool spun on a
    core the busy one needed: 22 photos/s with spinning, 34 without (bench/identify.py, 2 cores)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options
