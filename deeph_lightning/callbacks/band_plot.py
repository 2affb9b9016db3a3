"""Band structure of one validation structure, predicted vs DFT: at the first validation, then at the first
validation at least ``every_n_steps`` optimizer steps after the last plot (a rule of the restored step
counter, so a resumed run plots where an uninterrupted one would).

Physicists judge a Hamiltonian by its bands, so the run shows them while it trains. The reference is the
structure's DFT H(R), S(R) from its DeepH folder (the record's ``source``; all stored blocks), else the blocks
stored in the dataset record (within the training cutoff; a truncated S(R) can fail to be positive definite,
the plot is then skipped with a warning). The predicted H(R) comes from ``deeph_eval.predict.predict_blocks``
on the EMA network (blocks within the cutoff); both use the same S(R) and the DFT Fermi level (energies are
drawn relative to it, so a rigid shift of the prediction stays visible). A model trained on standardised targets
(``model.target_gauge``) predicts H - μ·S: its prediction gets the reference's μ back first (``deeph_eval.gauge``),
so its plot and MAE show errors beyond the arbitrary energy zero.

Output: ``<dirpath>/val_bands_step<global step>.png``; W&B loggers get it as the image ``val/bands``, every
logger gets ``val/band_mae_meV`` (mean |ΔE| of the bands within [emin, emax] around the DFT Fermi level).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

from data_prep.deeph_format import DeepHFormatError, DeepHStructure, read_deeph
from data_prep.records import record_blocks


def record_structure(rec: dict, basis) -> DeepHStructure:
    """The DFT structure of a dataset record: its source DeepH folder when it is still there and matches the
    record, else the record itself (DFT H and S on the record's graph)."""
    source = Path(str(rec.get("source", "")))
    if (source / "info.json").is_file():
        try:
            st = read_deeph(source)
        except DeepHFormatError:
            st = None
        if st is not None and np.array_equal(st.numbers, rec["atomic_numbers"]) and np.allclose(
                st.positions, rec["positions"], atol=1e-6):
            st.source = str(rec["structure_id"])
            return st
    fermi = float(rec["fermi_level"][0]) if np.isfinite(rec["fermi_level"][0]) else None
    return DeepHStructure(
        cell=np.asarray(rec["cell"]), positions=np.asarray(rec["positions"]), numbers=np.asarray(rec["atomic_numbers"]),
        orbital_types=[list(basis.shells_of(int(z))) for z in rec["atomic_numbers"]], fermi_level=fermi,
        hamiltonians=record_blocks(rec, "h"), overlaps=record_blocks(rec, "s"), pbc=np.asarray(rec["pbc"], dtype=bool),
        source=f"{rec['structure_id']} (dataset record, blocks within the cutoff)",
    )


def band_mae_meV(ref, pred, fermi_level: float, emin: float, emax: float) -> float:
    """Mean |E_pred - E_DFT| (meV) over the bands and k-points whose DFT energy lies in the window."""
    from deeph_eval.bands import common_bands

    a, b = common_bands(ref, pred)
    rel = a - fermi_level
    inside = np.isfinite(a) & np.isfinite(b) & (rel >= emin) & (rel <= emax)
    return float(np.abs(a - b)[inside].mean() * 1000.0) if inside.any() else float("nan")


class ValidationBandsPlot(pl.Callback):
    def __init__(self, dirpath: str, every_n_steps: int = 500, structure: int | str = 0, npoints: int = 60,
                 kspacing: float = 0.3, emin: float = -6.0, emax: float = 6.0):
        """``structure``: index into the validation split, or a structure id."""
        self.dirpath = Path(dirpath)
        self.every = max(1, int(every_n_steps))
        self.structure = structure
        self.npoints = int(npoints)
        self.kspacing = float(kspacing)
        self.emin, self.emax = float(emin), float(emax)
        self.last_plot_step: int | None = None
        self._reference = None  # (DeepHStructure, BandResult, n_electrons), computed once
        self.last_plot: Path | None = None

    def state_dict(self) -> dict:
        return {"last_plot_step": self.last_plot_step}

    def load_state_dict(self, state: dict) -> None:
        self.last_plot_step = state.get("last_plot_step")

    def _record(self, datamodule) -> dict:
        records = datamodule.records
        val = list(records.split("val"))
        if not val:
            raise ValueError("the validation split is empty")
        if isinstance(self.structure, str):
            ids = records.metadata["ids"]
            match = [i for i in val if ids[i] == self.structure]
            if not match:
                raise ValueError(f"structure {self.structure!r} is not in the validation split")
            return records[match[0]]
        return records[val[int(self.structure) % len(val)]]

    def _loaded(self, pl_module):
        from ..models.checkpoint import LoadedModel

        meta = {"dft_recipe": getattr(pl_module, "dft_recipe", None), "global_step": int(pl_module.global_step)}
        meta.update({key: getattr(pl_module, key, None) for key in ("target_gauge", "atom_onsite", "huckel_k")})
        meta["target_gauge"] = meta["target_gauge"] or "raw"
        return LoadedModel(model=pl_module.eval_net(), basis=pl_module.basis, cutoff=pl_module.cutoff, meta=meta)

    def reference(self, trainer, pl_module):
        if self._reference is None:
            from deeph_eval.bands import compute_bands
            from deeph_eval.inference import electron_count

            st = record_structure(self._record(trainer.datamodule), pl_module.basis)
            n_e = electron_count(self._loaded(pl_module), st)
            if n_e is None:
                raise ValueError(f"{st.source}: number of valence electrons unknown (no info.json, no DFT recipe)")
            bands = compute_bands(st, n_e, npoints=self.npoints, kspacing=self.kspacing)
            self._reference = (st, bands, n_e)
        return self._reference

    def plot(self, trainer, pl_module) -> tuple[Path, float]:
        from dataclasses import replace

        from deeph_eval.bands import compute_bands
        from deeph_eval.plots import plot_bands
        from deeph_eval.predict import predict_blocks

        st, ref, n_e = self.reference(trainer, pl_module)
        was_training = pl_module.training
        pl_module.eval()
        loaded = self._loaded(pl_module)
        try:
            predicted = predict_blocks(loaded, st)
        finally:
            pl_module.train(was_training)
        if loaded.target_gauge != "raw":
            from data_prep.gauge import shifted
            from deeph_eval.gauge import model_hamiltonian, mu_offset

            predicted = model_hamiltonian(loaded, st.numbers, predicted, st.overlaps)
            predicted = shifted(predicted, st.overlaps, mu_offset(predicted, st.hamiltonians, st.overlaps))
        pred = compute_bands(replace(st, hamiltonians=predicted), n_e, kpath=ref.kpath, kspacing=self.kspacing)
        ef = ref.filling.fermi_level
        mae = band_mae_meV(ref, pred, ef, self.emin, self.emax)
        step = int(trainer.global_step)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        out = self.dirpath / f"val_bands_step{step:07d}.png"
        name = st.source.split(" (")[0]
        plot_bands(ref.kpath, [("DFT", ref.energies, ef), (f"DeepH, step {step}", pred.energies, ef)], out,
                   emin=self.emin, emax=self.emax,
                   title=f"{name}: band MAE {mae:.0f} meV in [{self.emin:g}, {self.emax:g}] eV (DFT $E_F$)")
        return out, mae

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        step = int(trainer.global_step)
        if self.last_plot_step is not None and step - self.last_plot_step < self.every:
            return
        self.last_plot_step = step
        if not trainer.is_global_zero:
            return
        try:
            with torch.inference_mode(False):
                out, mae = self.plot(trainer, pl_module)
        except Exception as err:  # a diagnostic plot must not end a training run
            rank_zero_warn(f"validation band plot skipped: {type(err).__name__}: {err}")
            return
        self.last_plot = out
        for logger in trainer.loggers:
            logger.log_metrics({"val/band_mae_meV": mae}, step=trainer.global_step)
            if type(logger).__name__ == "WandbLogger":
                logger.log_image(key="val/bands", images=[str(out)], step=trainer.global_step)
