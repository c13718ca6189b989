"""End-to-end tests: the real Pulumi engine, kpt and kubectl on a throwaway cluster (`make e2e`).

`test_e2e.py` needs the Pulumi CLI and a reachable cluster and skips without them; the other
modules check offline that what it deploys is valid for the program and for kpt.
"""
