"""`kpt-catalog`: the command that plans, diffs, checks, deploys and rolls back the catalog.

One module per subcommand: `plan`, `diff` (a package: reading kubectl's diff, the live objects,
the native objects, pulumi's preview), `status`, `deploy` (up, preview, reapply, destroy,
destroy-all through the Pulumi engine), `stack`; `cli` dispatches, `exits` holds the exit codes
every subcommand shares, `output` the colour and JSON rules.
"""
