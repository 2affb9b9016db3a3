"""A pack of a shipped dataset follows the shipped data: when the extracted version changes (new chunks pulled,
another cache), the next run packs it again; a pack of the user's own folders is never replaced."""

import json

from data_prep.embedded import quickstart_path
from data_prep.lmdb_dataset import METADATA_FILE
from deeph_lightning.datamodule import DeepHDataModule


def _sources(path):
    return json.loads((path / METADATA_FILE).read_text())["sources"]


def test_embedded_pack_is_redone_when_the_shipped_version_changes(tmp_path, monkeypatch, capsys):
    pack = tmp_path / "pack.lmdb"
    monkeypatch.setenv("DEEPH_CACHE", str(tmp_path / "cache-a"))
    running = DeepHDataModule(path=str(pack), pack_from="embedded:quickstart", cutoff=4.0)
    running.prepare_data()
    first = _sources(pack)
    assert first[0].startswith(str(tmp_path / "cache-a"))
    stamp = (pack / METADATA_FILE).stat().st_mtime_ns
    DeepHDataModule(path=str(pack), pack_from="embedded:quickstart", cutoff=4.0).prepare_data()
    assert (pack / METADATA_FILE).stat().st_mtime_ns == stamp  # same version: reused
    capsys.readouterr()

    monkeypatch.setenv("DEEPH_CACHE", str(tmp_path / "cache-b"))  # another extracted version of the data
    running.prepare_data()  # the same run again (trainer.test after fit): its data does not change under it
    assert (pack / METADATA_FILE).stat().st_mtime_ns == stamp
    DeepHDataModule(path=str(pack), pack_from="embedded:quickstart", cutoff=4.0).prepare_data()
    assert _sources(pack)[0].startswith(str(tmp_path / "cache-b"))
    assert "repacking" in capsys.readouterr().out

    own = tmp_path / "own.lmdb"  # the user's folders: packed once, never replaced behind their back
    folders = quickstart_path(tmp_path / "cache-b")
    DeepHDataModule(path=str(own), pack_from=str(folders), cutoff=4.0).prepare_data()
    stamp = (own / METADATA_FILE).stat().st_mtime_ns
    DeepHDataModule(path=str(own), pack_from=str(tmp_path / "elsewhere"), cutoff=4.0).prepare_data()
    assert (own / METADATA_FILE).stat().st_mtime_ns == stamp
