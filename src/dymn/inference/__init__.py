"""Waveforms and files -> scores: tagging, detection, timelines and events, embeddings, live audio, HEAR."""
