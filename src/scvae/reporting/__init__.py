"""Reporting: the self-contained HTML page of a run (its figures come from scvae.evaluation.plots)."""
