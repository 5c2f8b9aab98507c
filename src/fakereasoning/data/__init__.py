"""Datasets in the MMFR layout: reading, validation, conversion (mmfr, cot) and the MMFR-Local builder (local)."""
