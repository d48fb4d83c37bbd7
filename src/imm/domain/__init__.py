"""Pure rules of the platform: no I/O, no imports of other IMM packages."""
