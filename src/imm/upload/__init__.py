"""Uploading a model version from a local file, folder or archive (no CLI code here).

``imm models upload`` and ``python -m imm.upload`` are thin shells around ``Uploader``.
"""

from imm.upload.engine import (
    Interrupted,
    NoProgress,
    Progress,
    Uploader,
    UploadError,
    UploadRequest,
    UploadResult,
)
from imm.upload.plan import PART_MB_DEFAULT, PART_MB_MAX, PART_MB_MIN

__all__ = [
    "PART_MB_DEFAULT",
    "PART_MB_MAX",
    "PART_MB_MIN",
    "Interrupted",
    "NoProgress",
    "Progress",
    "UploadError",
    "UploadRequest",
    "UploadResult",
    "Uploader",
]
