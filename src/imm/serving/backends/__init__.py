"""Model runtimes, chosen by what a version folder holds."""

from __future__ import annotations

from pathlib import Path

from imm.serving.backends.base import Backend, RuntimeOptions
from imm.serving.errors import ModelError
from imm.serving.fetch import NO_MODEL


def detect(folder: Path) -> tuple[str, Path]:
    """Which runtime a version folder needs, and the path to give it.

    A SavedModel (``saved_model.pb`` with ``variables/``) wins over ONNX; files may sit in a
    sub-folder (the store's optional ``<key>`` level).
    """
    saved = sorted(folder.rglob("saved_model.pb"))
    if saved:
        model_dir = saved[0].parent
        if not (model_dir / "variables").is_dir():
            raise ModelError(f"{model_dir} has saved_model.pb but no variables/ folder")
        return "tensorflow", model_dir
    onnx = sorted(p for p in folder.rglob("*.onnx") if p.is_file())
    if len(onnx) == 1:
        return "onnx", onnx[0]
    if len(onnx) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in onnx)
        raise ModelError(f"{folder} holds several ONNX models ({names}); keep one per version")
    raise ModelError(f"{folder} {NO_MODEL}")


def load(folder: Path, options: RuntimeOptions) -> Backend:
    kind, path = detect(folder)
    if kind == "tensorflow":
        from imm.serving.backends.tensorflow import TensorFlowBackend

        return TensorFlowBackend(path, options)
    from imm.serving.backends.onnx import OnnxBackend

    return OnnxBackend(path, options)


__all__ = ["Backend", "RuntimeOptions", "detect", "load"]
