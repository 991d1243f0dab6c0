"""The mirrored directory: tenants, instances, app credentials, departments, members.

Plain functions over a session. Writes are upserts on natural keys, guarded by the sync time so
that a stale sync never overwrites a newer one (contract §7); none of them commits.
"""
