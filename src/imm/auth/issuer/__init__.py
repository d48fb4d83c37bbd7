"""The built-in OpenID Connect issuer, for single-machine use (Dex is the production choice)."""
