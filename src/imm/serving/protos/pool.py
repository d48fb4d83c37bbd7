"""A descriptor pool of our own for the generated protocol modules.

TensorFlow registers ``tensorflow.TensorProto`` and friends in protobuf's default pool; our
files declare the same full names (the wire needs them), so sharing that pool would make any
process that also imports TensorFlow (the SavedModel backend, tests) fail with "duplicate
symbol". A private pool keeps both usable side by side.
"""

from __future__ import annotations

from google.protobuf import any_pb2, descriptor_pool, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()
for _wkt in (any_pb2, wrappers_pb2):
    POOL.AddSerializedFile(_wkt.DESCRIPTOR.serialized_pb)
