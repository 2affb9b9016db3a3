"""Many structures -> DeepH folders: one isolated process per structure, resumable, failures recorded.

* ``OUT/<id>/`` appears only when complete (``write_deeph`` writes a temporary folder, then renames);
  existing complete folders are skipped, so a killed run resumes where it stopped.
* ``OUT/failures.jsonl`` (``failures.task<k>.jsonl`` for array task k) gets one JSON line per failure
  with the id and the error; failed structures are retried on the next run.
* ``OUT/settings.json`` records the recipe; resuming with a different recipe is an error.
* ``array_index/array_count`` split the structures round-robin across SLURM array tasks.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
import traceback
from pathlib import Path

from .runner import checkpoint_partial, remove_checkpoint
from .settings import EXECUTION_ONLY, DFTSettings
from .structure import BadStructureError, check_structure


def is_complete(folder: Path) -> bool:
    return (folder / "info.json").is_file() and (folder / "hamiltonians.h5").is_file()


def _exit_with_parent(parent_pid: int) -> None:
    """Background watchdog: a DFT child must not outlive its batch process (killed job, Ctrl-C)."""
    import threading

    def watch():
        while True:
            time.sleep(2.0)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def scf_checkpoint(out: Path, sid: str) -> Path:
    """The SCF restart file of a structure being computed: a run killed or timed out resumes from it (the SCF
    cycles already done are not lost when a working session ends); removed when the structure is done or fails."""
    return out / f".{sid}.scf-checkpoint.npz"


def _worker(sid: str, atoms, out_dir: str, settings: dict, conn, parent_pid: int) -> None:
    _exit_with_parent(parent_pid)
    checkpoint = scf_checkpoint(Path(out_dir), sid)
    try:
        from ..deeph_format import write_deeph
        from .runner import run_dft

        result = run_dft(atoms, DFTSettings.from_dict(settings), where=sid, checkpoint=checkpoint)
        result.structure.info["structure_id"] = sid
        write_deeph(result.structure, Path(out_dir) / sid)
        conn.send(("ok", result.timings))
    except BaseException as err:  # report everything: the parent records it
        conn.send(("error", f"{type(err).__name__}: {err}", traceback.format_exc(limit=4)))
    finally:
        remove_checkpoint(checkpoint)
        conn.close()


def _check_settings_file(out: Path, settings: DFTSettings) -> None:
    path = out / "settings.json"
    current = settings.recipe()
    if path.is_file():
        recorded = {k: v for k, v in json.loads(path.read_text()).items() if k not in EXECUTION_ONLY}
        if recorded != current:
            diff = {k: (recorded.get(k), v) for k, v in current.items() if recorded.get(k) != v}
            raise ValueError(f"{path}: this folder was computed with other DFT settings (recorded, now): {diff}; "
                             "use another --out or the same settings")
        return
    tmp = out / f".settings.json.{os.getpid()}"
    tmp.write_text(json.dumps(current, indent=2) + "\n")
    os.replace(tmp, path)


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def compute_seconds(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) process ``pid`` has used; None where /proc cannot say.

    A structure's ``timeout`` is charged in these, divided by its threads: a DFT run starved by other work on
    the machine (training beside it) or paused with SIGSTOP spends wall time without computing, and must not
    time out for that."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None


def array_share(items: list, index: int, count: int) -> list:
    if not 0 <= index < count:
        raise ValueError(f"array index {index} outside 0..{count - 1}")
    return items[index::count]


def run_batch(structures, out_dir, settings: DFTSettings = DFTSettings(), *, array_index: int = 0,
              array_count: int = 1, workers: int = 1, timeout: float | None = None, log=print) -> dict:
    """Compute this task's share of ``structures`` ((id, Atoms) pairs). Returns counts of done/skipped/failed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings_file(out, settings)
    failures = out / ("failures.jsonl" if array_count == 1 else f"failures.task{array_index}.jsonl")
    mine = array_share(list(structures), array_index, array_count)
    todo = []
    counts = {"done": 0, "skipped": 0, "failed": 0}
    for sid, atoms in mine:
        for stale in out.glob(f".{sid}.tmp-*"):  # left by a killed run of this task
            shutil.rmtree(stale, ignore_errors=True)
        checkpoint_partial(scf_checkpoint(out, sid)).unlink(missing_ok=True)
        if is_complete(out / sid):
            remove_checkpoint(scf_checkpoint(out, sid))  # killed after writing the folder
            counts["skipped"] += 1
        else:
            todo.append((sid, atoms))
    log(f"{len(mine)} structures for task {array_index}/{array_count}: {counts['skipped']} already done, "
        f"{len(todo)} to compute -> {out}")

    def record_failure(sid: str, error: str, detail: str = "") -> None:
        counts["failed"] += 1
        with open(failures, "a") as f:
            f.write(json.dumps({"id": sid, "error": error, "detail": detail, "time": time.strftime("%F %T")}) + "\n")
        log(f"  FAILED {sid}: {error}")

    ctx = mp.get_context("forkserver")
    running: dict = {}  # sid -> (process, conn, start)
    queue = list(todo)
    t_start, computed_time, n_finished = time.perf_counter(), 0.0, 0
    while queue or running:
        while queue and len(running) < workers:
            sid, atoms = queue.pop(0)
            try:
                check_structure(atoms, settings, sid)
            except (BadStructureError, KeyError) as err:
                record_failure(sid, f"{type(err).__name__}: {err}")
                continue
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(sid, atoms, str(out), settings.to_dict(), send, os.getpid()), daemon=True)
            proc.start()
            send.close()
            running[sid] = (proc, recv, time.perf_counter())
        time.sleep(0.05)
        for sid, (proc, recv, start) in list(running.items()):
            elapsed = time.perf_counter() - start
            cpu = compute_seconds(proc.pid) if timeout is not None else None
            charged = elapsed if cpu is None else cpu / max(settings.threads, 1)
            if proc.is_alive() and not recv.poll() and (timeout is None or charged < timeout):
                continue
            try:
                message = recv.recv() if recv.poll() else None
            except EOFError:  # the child died without reporting (crash, out of memory)
                message = None
            timed_out = proc.is_alive() and message is None
            if timed_out:
                proc.kill()
            proc.join()
            del running[sid]
            n_finished += 1
            computed_time += elapsed
            if message is None:
                why = (f"timed out after {timeout:g} s of compute ({elapsed:.0f} s wall)" if timed_out
                       else f"process died (exit code {proc.exitcode})")
                record_failure(sid, why)
            elif message[0] == "ok":
                counts["done"] += 1
            else:
                record_failure(sid, message[1], message[2])
            left = len(queue) + len(running)
            eta = computed_time / n_finished * left / max(workers, 1)
            log(f"[{n_finished}/{len(todo)}] {sid} {'ok' if message and message[0] == 'ok' else 'failed'} "
                f"{elapsed:.1f}s | done {counts['done']} failed {counts['failed']} | "
                f"elapsed {_format_eta(time.perf_counter() - t_start)} ETA {_format_eta(eta)}")
    return counts
