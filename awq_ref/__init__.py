"""awq_ref: a readable reference AWQ (Lin et al. 2023) and the formats real tools read."""
__version__ = "0.1.0"
