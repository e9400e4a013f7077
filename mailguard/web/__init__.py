"""The web listener: health and metrics now, the review desk later."""
