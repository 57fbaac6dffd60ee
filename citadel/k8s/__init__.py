"""Kubernetes integration: API client settings, TokenReview, root-cert ConfigMaps, CA Secrets,
leader election.

Modules (import them directly; this package re-exports nothing so that importing one of them
does not load the others):

- :mod:`~citadel.k8s.client` -- Configuration from explicit settings, in-cluster or kubeconfig.
- :mod:`~citadel.k8s.token_review` -- TokenReview client used by the CSR authenticators.
- :mod:`~citadel.k8s.root_cert_controller` -- publishes the trust bundle into every namespace
  (pure plan in :mod:`~citadel.k8s.root_cert_reconcile`, writes in
  :mod:`~citadel.k8s.root_cert_writer`, watches in :mod:`~citadel.k8s.list_watch`).
- :mod:`~citadel.k8s.cacerts_secret` / :mod:`~citadel.k8s.root_ca_secret` -- CA material in
  Secrets (plug-in CA; a self-signed root instead of the database).
- :mod:`~citadel.k8s.leader_elector` (Protocol), :mod:`~citadel.k8s.lease_elector`,
  :mod:`~citadel.k8s.db_lock_elector`, :mod:`~citadel.k8s.leader_election_loop` and
  :mod:`~citadel.k8s.singleton_jobs` -- singleton jobs on one replica at a time.
- :mod:`~citadel.k8s.errors` / :mod:`~citadel.k8s.controller_errors` /
  :mod:`~citadel.k8s.api_errors` -- typed errors and the mapping from client failures.
"""
