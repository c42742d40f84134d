"""Training loops; each runs unchanged in one process or under torchrun (DDP)."""
