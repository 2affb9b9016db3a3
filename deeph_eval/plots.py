"""bands.png and dos.png: readable at a glance (labelled k-points, Fermi level at 0, legend when overlaid)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STYLES = [dict(color="black", lw=1.6, ls="-"), dict(color="tab:red", lw=1.2, ls="--")]


def _merged_ticks(special_x, labels):
    xs, ls = [], []
    for x, lab in zip(special_x, labels):
        if xs and abs(x - xs[-1]) < 1e-9:
            if lab != ls[-1]:
                ls[-1] = f"{ls[-1]}|{lab}"
        else:
            xs.append(float(x))
            ls.append(lab)
    return xs, ls


def _save(fig, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=150)
    plt.close(fig)
    os.replace(tmp, out)


def plot_bands(kpath, series, out, *, emin=-6.0, emax=6.0, title=""):
    """``series``: list of (label, energies (n_k, n_b) eV, fermi level eV); energies drawn relative to E_F."""
    out = Path(out)
    fig, ax = plt.subplots(figsize=(7, 5))
    single_k = len(kpath.x) == 1
    for (label, energies, ef), style in zip(series, STYLES):
        rel = np.asarray(energies) - ef
        if single_k:  # molecule / Γ only: levels as horizontal bars
            for n, e in enumerate(rel[0]):
                ax.hlines(e, 0, 1, label=label if n == 0 else None, **style)
        else:
            for n in range(rel.shape[1]):
                ax.plot(kpath.x, rel[:, n], label=label if n == 0 else None, **style)
    ax.axhline(0.0, color="tab:blue", lw=0.9, ls=":", label="Fermi level")
    if single_k:
        ax.set_xticks([0.5], ["Γ"])
        ax.set_xlim(0, 1)
    else:
        xs, ls = _merged_ticks(kpath.special_x, kpath.labels)
        for x in xs:
            ax.axvline(x, color="0.7", lw=0.7)
        ax.set_xticks(xs, ls, fontsize=12)
        ax.set_xlim(kpath.x[0], kpath.x[-1])
    ax.set_ylim(emin, emax)
    ax.set_ylabel(r"$E - E_F$ (eV)", fontsize=12)
    ax.set_title(title, fontsize=11)
    ax.legend(loc="upper right", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    _save(fig, out)


def plot_dos(energies, series, out, *, title=""):
    """``series``: list of (label, dos, fermi level); x axis E − E_F."""
    out = Path(out)
    fig, ax = plt.subplots(figsize=(7, 4))
    for (label, dos, ef), style in zip(series, STYLES):
        ax.plot(np.asarray(energies) - ef, dos, label=label, **style)
    ax.axvline(0.0, color="tab:blue", lw=0.9, ls=":", label="Fermi level")
    ax.set_xlabel(r"$E - E_F$ (eV)", fontsize=12)
    ax.set_ylabel("DOS (states / eV / cell)", fontsize=12)
    ax.set_xlim(np.min(energies) - series[0][2], np.max(energies) - series[0][2])
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=11)
    ax.legend(loc="upper right", fontsize=9)
    fig.tight_layout()
    _save(fig, out)
