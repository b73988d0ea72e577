"""Corpus jobs on Ray: inputs into shards, the pipeline stages, resumable Parquet output."""
