"""Lightning's LeafSpec FutureWarning (raised each time a loop wraps its dataloaders) is filtered at its
source, once, when the training code is imported; other warnings still show."""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

from pytorch_lightning.utilities.combined_loader import CombinedLoader
from torch.utils.data import DataLoader

import deeph_lightning.module as module

ROOT = Path(__file__).resolve().parents[2]


def _two_validation_loops():
    for _ in range(2):  # what the fit loop does at every validation
        next(iter(CombinedLoader([DataLoader(list(range(4)), batch_size=2)], "sequential")))


def test_importing_the_training_code_silences_leafspec():
    """In a fresh process (pytest resets filters per test): shown before the import, never after."""
    script = textwrap.dedent("""
        import sys, warnings
        warnings.simplefilter("always")
        from pytorch_lightning.utilities.combined_loader import CombinedLoader
        from torch.utils.data import DataLoader

        def _two_validation_loops():
            for _ in range(2):
                next(iter(CombinedLoader([DataLoader(list(range(4)), batch_size=2)], "sequential")))

        _two_validation_loops()
        print("IMPORT", file=sys.stderr, flush=True)
        import deeph_lightning.module
        _two_validation_loops()
        warnings.warn("another deprecation", FutureWarning)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    err = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stderr
    before, after = err.split("IMPORT")
    assert before.count("LeafSpec") == 2
    assert "LeafSpec" not in after and "another deprecation" in after


def test_only_the_leafspec_warning_is_filtered():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        module.quiet_known_warnings()
        _two_validation_loops()
        warnings.warn("another deprecation", FutureWarning)
        warnings.warn_explicit("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, "x.py", 1,
                               module="somewhere.else")
    assert [str(w.message) for w in seen] == ["another deprecation", "`isinstance(treespec, LeafSpec)` is deprecated"]
