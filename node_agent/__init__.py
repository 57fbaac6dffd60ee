"""The Citadel node agent: local keys, CSR bootstrap, rotation, SDS and the Workload API."""
