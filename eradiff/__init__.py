"""eradiff: erase objects from images with a diffusion model (EraDiff: CRO + SRA)."""

__version__ = "0.1.0"
