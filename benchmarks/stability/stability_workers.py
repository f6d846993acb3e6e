"""Workers of the stability study: the same command started N times (one thread each) shares the runs, each
taking the next one no other worker holds (OUT/claims/<run>, as the seeded study does), and the data sets
the runs need are built once."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from shared import archive_files, claimed
from stability_archive import ARCHIVED
from stability_judge import outcome, run_name, stand_in


def build_once(out: Path, builds: dict[Path, list[str]]) -> None:
    """Run each command whose folder has no ``test.npz`` yet (the builders write it last), in one worker:
    another waits for its files, and stops with a message if that build failed."""
    need = {folder: cmd for folder, cmd in builds.items() if not (folder / "test.npz").exists()}
    if not need:
        return
    built = lambda: all((folder / "test.npz").exists() for folder in need)  # noqa: E731
    with claimed(out / "claims" / "data") as mine:
        if not mine:
            while not built():
                if not (out / "claims" / "data").exists() and not built():  # released without the files
                    raise SystemExit(f"another worker's build of {', '.join(map(str, need))} failed")
                time.sleep(10)
            return
        for cmd in need.values():
            subprocess.run(cmd, check=True)


def work(out: Path, jobs: list[tuple], train, archive: Path, wait: float = 60.0) -> None:
    """Train every unfinished job (arm, method, data set, seed) with ``train(job)``, skipping runs another
    worker holds. A worker whose remaining jobs are held, or wait for a held default twin, polls every
    ``wait`` seconds until they are done (``wait=0``: return instead)."""
    tried = set()  # a run that ended without a summary (a crash) is not retried by this worker's next pass
    while True:
        pending = False
        for job in jobs:
            arm, method, dataset, seed = job
            run = out / run_name(*job)
            if job in tried:
                continue
            if outcome(run) is not None or stand_in(out, *job) is not None:
                archive_files(run, archive / run_name(*job), ARCHIVED)  # a run finished before archives existed
                continue
            if arm == "warn":  # identical to the default twin until a trigger: rerun only twins with events
                twin_name = run_name("default", method, dataset, seed)
                twin = outcome(out / twin_name)
                if twin is None:  # still training in another worker, or not in this plan
                    pending = pending or (out / "claims" / twin_name).exists()
                    continue
                if not twin["events"]:
                    continue
            with claimed(out / "claims" / run_name(*job)) as mine:
                if not mine:
                    pending = True
                    continue
                if outcome(run) is None:  # another worker may have finished it since the check above
                    tried.add(job)
                    train(job)
        if not pending or not wait:
            return
        time.sleep(wait)
