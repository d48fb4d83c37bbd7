"""The reconciler: drives the runtime toward the desired state in the database."""
