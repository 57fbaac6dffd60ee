"""Shared, network-free identity primitives: SPIFFE IDs, keys, CSRs, X.509, bundles, chains."""
