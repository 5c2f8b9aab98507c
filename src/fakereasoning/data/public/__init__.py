"""MMFR-Public: genuine generator outputs and real photos from public repositories, in the MMFR layout."""

from fakereasoning.data.public.build import build_public

__all__ = ["build_public"]
