"""deeph-prep convert SRC --out DST --to v1|legacy: DeepH folders from one layout to the other (all-or-nothing).

SRC is one DeepH folder (either layout, detected) or a directory searched recursively for them; DST then
mirrors SRC's sub-folders. The numbers are unchanged: orbital order and atom numbering are converted, and the
v1 POSCAR groups atoms by species (the message says when that reorders atoms). H and S are written on one
pair set (zero blocks added where only one of them had a pair), so every DeepH tool reads both.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert DeepH folders between the legacy and the DeepH-pack v1 layout",
                       description=__doc__)
    p.add_argument("source", help="DeepH folder (legacy or v1), or a directory holding them")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    p.add_argument("--to", required=True, choices=("v1", "legacy"), help="layout to write")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def _convert(st, dst: Path, to: str, overwrite: bool) -> str:
    """Write one structure; returns what changed besides the layout (for the log line)."""
    import numpy as np

    from ..deeph_format import write_deeph
    from ..deeph_v1 import atom_order
    from ..pair_sets import on_one_pair_set

    st, n_h, n_s = on_one_pair_set(st)
    write_deeph(st, dst, overwrite=overwrite, layout=to)
    notes = []
    if n_h or n_s:
        notes.append(f"{n_h} zero H and {n_s} zero S blocks added (one pair set)")
    if to == "v1" and not np.array_equal(atom_order(st), np.arange(st.n_atoms)):
        notes.append("atoms regrouped by species for the POSCAR (stable, species in order of first appearance)")
    return "".join(f"; {n}" for n in notes)


def run(args) -> int:
    from ..atomic import atomic_dir
    from ..deeph_format import is_deeph_folder, read_deeph
    from ..lmdb_dataset import find_structure_folders

    src, out = Path(args.source), Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
    if src.resolve() == out.resolve() or src.resolve() in out.resolve().parents:
        raise ValueError(f"--out {out} must lie outside {src}")
    folders = find_structure_folders([src])
    if is_deeph_folder(src):
        print(f"{src} -> {out}" + _convert(read_deeph(src), out, args.to, args.overwrite))
    else:  # one bad folder and nothing is left at --out
        with atomic_dir(out, overwrite=args.overwrite) as tmp:
            for folder in folders:
                rel = folder.relative_to(src.resolve())
                print(f"{folder} -> {out / rel}" + _convert(read_deeph(folder), tmp / rel, args.to, False))
    print(f"converted {len(folders)} folder(s) to the {args.to} layout in {out}")
    return 0
