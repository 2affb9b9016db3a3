"""``deeph-prep`` and ``deeph-eval`` parse their command line (help, argument errors) without importing torch:
the heavy libraries are imported by the step that uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torch_geometric", "e3nn", "pyscf", "pytorch_lightning", "hydra")

SCRIPT = """
import contextlib, io, json, sys
from {module} import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = main({argv!r})
    except SystemExit as exit:
        code = exit.code
print(json.dumps({{"code": code, "output": out.getvalue(), "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""

CASES = [
    ("data_prep.cli", ["--help"], 0),
    ("data_prep.cli", ["pack", "--help"], 0),
    ("data_prep.cli", ["pack"], 2),  # missing arguments
    ("deeph_eval.cli", ["--help"], 0),
    ("deeph_eval.cli", ["predict", "--help"], 0),
    ("deeph_eval.cli", ["bands", "--solver", "qr", "--out", "x"], 2),  # invalid choice
    ("deeph_eval.cli", ["test", "--ckpt", "m.ckpt"], 2),
]


@pytest.mark.parametrize("module,argv,code", CASES)
def test_command_line_parsing_imports_no_torch(module, argv, code):
    script = SCRIPT.format(module=module, argv=argv, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == code, result["output"]
    if code == 0:
        assert "usage:" in result["output"], result
    else:  # argument errors are one line naming the command and the problem
        lines = result["output"].strip().splitlines()
        assert len(lines) == 1 and "error:" in lines[0], result
    assert result["heavy"] == [], result
