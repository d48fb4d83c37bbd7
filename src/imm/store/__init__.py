"""Model store: one interface, filesystem and S3 backends."""
