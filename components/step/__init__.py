"""The step runner behind `python3 components/kptstep.py <sub-command>`, one job per module.

- contract.py  the interface of docs/step-contract.md: variables, sub-commands, the result line
- errors.py    the ways a step fails, each with the words its summary line uses
- events.py    kpt's JSON event stream, reduced to what decides success
- process.py   starting kpt and kubectl, reading them to the end, deadlines, killing their group
- logs.py      what the user sees on stderr (bounded lines) and the lasting per-package log
- kpt.py       the kpt runs: apply, status, destroy
- waits.py     the kubectl gates: wait, rollout status, report
- restart.py   restarting the workloads that use a rotated Secret
- prune/       the prune guard (what kpt would prune, checked before the apply) and, in
               prune/rules.py, the rules kpt prunes by, which `kpt-catalog diff` shares
- commands.py  the sub-commands and the entry point that never lets a traceback escape

Standard library only: the command provider may run this outside the project's virtualenv.
"""
