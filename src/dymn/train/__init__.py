"""Training and fine-tuning on PyTorch Lightning (install the ``[train]`` extra)."""
