"""The model server every endpoint replica runs: TensorFlow Serving's gRPC API over
ONNX (onnxruntime) and SavedModel (TensorFlow) models. Run ``python -m imm.serving -h``.

It imports only ``imm.domain`` and ``imm.store`` from IMM, so it runs alone in a replica.
"""
