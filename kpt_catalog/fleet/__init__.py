"""`kpt-catalog fleet`: one catalog rolled to many clusters, in waves, with a canary, a failure
budget and rollback to each cluster's last good catalog.

- config.py    fleet.yaml, checked
- waves.py     the canary and the waves after it
- snapshot.py  content-addressed copies of a deployed catalog
- journal.py   the rollout's journal and the fleet lock
- rollout.py   the engine: waves, budgets, policies, rollback, resume
- runner.py    what the engine runs on a real cluster (./kpt-catalog up, status, destroy)
- command.py   the subcommands
"""
