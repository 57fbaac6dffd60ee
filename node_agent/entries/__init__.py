"""Registration entries on the node agent: per-workload identities from the CA.

* :mod:`.client`: the CA's ``citadel.agent.v1.AgentService`` over mTLS (the agent's own SVID);
* :mod:`.entry_set`: the entries this agent holds, at a store revision;
* :mod:`.sync`: the periodic, incremental sync (with backoff) of entries and the bundle;
* :mod:`.svid_manager`: a locally generated key and a verified X509-SVID per entry, rotated
  with :mod:`node_agent.rotation` and obtained in batches;
* :mod:`.identity_source`: the Workload API's :class:`IdentitySource` over all of that;
* :mod:`.sds_resolver`: SDS resource names ``<SPIFFE ID>``, ``<trust domain ID>``, ``ALL``;
* :mod:`.settings`: the ``entries:`` and ``workload_api:`` configuration sections;
* :mod:`.service`: the composition the agent starts and stops.
"""
