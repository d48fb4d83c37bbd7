"""Metadata database: tables, engine, migrations."""
