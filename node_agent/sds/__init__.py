"""Envoy's Secret Discovery Service (SotW and Delta) over a Unix socket."""
