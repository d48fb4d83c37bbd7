"""S3's multipart limits, which the stores enforce and the uploading client plans by."""

from __future__ import annotations

MiB = 1024 * 1024
MIN_PART_NUMBER, MAX_PART_NUMBER = 1, 10_000
MIN_PART_SIZE = 5 * MiB  # S3's EntityTooSmall limit, for every part but the last
MAX_PART_SIZE = 5000 * MiB
