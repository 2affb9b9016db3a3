"""Training callbacks and loggers, one module each (configs name them as ``deeph_lightning.callbacks.<Name>``).

- ``last_checkpoint``: ``LastCheckpoint``, ``last.ckpt`` at the step the run stopped.
- ``monitors``: ``ThroughputMonitor`` (structures, atoms, matrix elements per second), ``PlainProgressLog``.
- ``band_plot``: ``ValidationBandsPlot``, predicted vs DFT bands of a validation structure (uses ``deeph_eval``).
- ``preemption``: ``SlurmRequeue``, checkpoint and requeue on SLURM's pre-emption signal.
- ``csv_logger``: ``CSVLogger``, a CSV logger that appends across resumes.
"""

from .band_plot import ValidationBandsPlot
from .csv_logger import CSVLogger
from .last_checkpoint import LastCheckpoint
from .monitors import PlainProgressLog, ThroughputMonitor, batch_matrix_elements
from .preemption import SlurmRequeue

__all__ = ["CSVLogger", "LastCheckpoint", "PlainProgressLog", "SlurmRequeue", "ThroughputMonitor",
           "ValidationBandsPlot", "batch_matrix_elements"]
