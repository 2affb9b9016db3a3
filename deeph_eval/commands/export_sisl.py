"""deeph-eval export-sisl: a DeepH folder's H(R), S(R) (DFT or predicted) as a sisl Hamiltonian file.

The .TSHS file (SIESTA's H and S, what TBtrans reads) opens with ``sisl.get_sile(path).read_hamiltonian()``
for sisl's bands, DOS and NEGF transport tools. From Python, ``deeph_eval.sisl_export.to_sisl(structure)``
gives the ``sisl.Hamiltonian`` with the atoms' species and orbitals (l, m) as well.
"""

from __future__ import annotations

from pathlib import Path

from ._common import formula, load_folder


def register(sub) -> None:
    p = sub.add_parser("export-sisl", help="write a DeepH folder's H(R), S(R) as a sisl Hamiltonian (.TSHS)",
                       description=__doc__)
    p.add_argument("--hamiltonian", required=True, help="DeepH folder (legacy or v1) with H and S")
    p.add_argument("--out", required=True, help="output file, e.g. si.TSHS (.nc also works with netCDF4 installed)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
    st = load_folder(args.hamiltonian, "--hamiltonian")
    from ..sisl_export import write_sisl

    h = write_sisl(st, out)
    print(f"{formula(st)}: {h.no} orbitals, {h.nnz} non-zero H elements over {h.n_s} cell images, "
          f"{'orthogonal' if h.orthogonal else 'non-orthogonal'} (eV, Å)")
    print(f"wrote {out}")
    return 0
