#!/usr/bin/env python3
"""Run one step of the catalog for one kpt package: `python3 components/kptstep.py <sub-command>`.

Pulumi's Commands run this fixed string with the environment that docs/step-contract.md
describes; the work is done by the modules of components/step/ (see its __init__.py).

This file is only the entry: it must parse on any Python 3 (and 2), so that an interpreter older
than the step supports ends with a one-line reason and a result line instead of a SyntaxError. So
it holds plain syntax only. Imported as `components.kptstep`, it offers the contract's names
(variables, sub-commands, result line) to the program and its tools.
"""

# Plain syntax only (no annotations, f-strings or pathlib), so that old interpreters parse it:
# ruff: noqa: UP031, PTH100, PTH120

import os
import sys

# First thing: the shell that started the step, so that the step can die with it (see
# components/step/process.py, die_with_parent).
_PARENT = os.getppid()
# The same as MINIMUM_PYTHON in components/step/contract.py, which newer syntax may not reach.
_MINIMUM = (3, 11)


def _refuse(failure, reason):  # noqa: ANN001, ANN202 -- type comment below: old syntax
    # type: (str, str) -> None
    """The contract's answer for a step that cannot start: one line, a result line, exit 2."""
    import json

    step = sys.argv[1] if len(sys.argv) > 1 else "?"
    package = os.environ.get("KPT_CATALOG_PACKAGE", "").strip() or "?"
    sys.stderr.write("[%s] %s failed (%s): %s\n" % (package, step, failure, reason))
    payload = {"package": package, "step": step, "ok": False, "failure": failure}
    sys.stdout.write("kpt-catalog-result: " + json.dumps(payload) + "\n")
    sys.stdout.flush()
    sys.exit(2)


if __name__ == "__main__":
    if sys.version_info < _MINIMUM:
        _refuse(
            "python too old",
            "python3 is %d.%d at %s; the step needs Python %d.%d or newer first on PATH"
            % (sys.version_info[0], sys.version_info[1], sys.executable, _MINIMUM[0], _MINIMUM[1]),
        )
    # Run as a script, sys.path starts with components/; the modules live under the project root.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        from components.step.commands import main
    except Exception as exc:  # a one-line reason instead of a traceback
        _refuse("step runner missing", "cannot load components/step: %s" % (exc,))
    sys.exit(main(parent=_PARENT))
else:
    from components.step.contract import *  # noqa: F403 -- the contract's names, as before
