"""The record of a run: manifest rows, atomic writes, DuckDB views."""
