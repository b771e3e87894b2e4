"""Batch restoration on Ray Data: one generator per actor, loaded once, same outputs as locally.

Rows carry file paths, not pixels: each actor reads, restores and writes its
files itself with the single-process job runner, so naming, skip-existing,
never-overwrite and atomic writes, EXIF and ICC behave exactly as without Ray.
"""

from pathlib import Path

from dequant import batch


class RestoreActor:
    """A Ray Data actor: builds the generator once, then restores the files of each batch."""

    def __init__(self, *, model: str | None, registry_path: str, settings: dict, format: str,
                 skip_existing: bool, overwrite: bool, max_pixels: int):
        from dequant import images, registry
        from dequant.restorer import Restorer, Settings

        restorer = Restorer(model, Settings(**settings), models=registry.load(Path(registry_path)))
        self.process = lambda picture: images.encode(restorer(picture), format)
        self.skip_existing, self.overwrite, self.max_pixels = skip_existing, overwrite, max_pixels

    def __call__(self, rows: dict) -> dict:
        reasons = []
        for source, target in zip(rows["source"], rows["target"]):
            job = batch.Job(Path(source), Path(target))
            reasons.append(batch.run_job(job, self.process, self.skip_existing, self.overwrite, self.max_pixels) or "")
        return {"source": list(rows["source"]), "reason": reasons}


def check(jobs: list[batch.Job]) -> None:
    """Usage errors before anything starts: Ray missing, or jobs Ray cannot do."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise batch.UsageError("--ray needs Ray: pip install 'dequant[ray]'") from None
    if any(job.source is None or job.target is None for job in jobs):
        raise batch.UsageError("--ray works on files and folders, not on standard input or output")


def run_jobs(jobs: list[batch.Job], *, model: str | None, settings, format: str, skip_existing: bool, overwrite: bool,
        max_pixels: int, address: str | None, workers: int, gpus_per_worker: float) -> batch.Outcome:
    from dataclasses import asdict

    import ray

    from dequant import registry

    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours reports instead
    cpus = max(1.0, ray.cluster_resources().get("CPU", 1) // workers) if not gpus_per_worker else 1.0
    # Each actor uses the threads its CPUs allow, no more: workers must not fight over cores.
    settings = {**asdict(settings), "threads": int(cpus)}
    rows = ray.data.from_items([{"source": str(j.source), "target": str(j.target)} for j in jobs])
    restored = rows.map_batches(
        RestoreActor, batch_size=1, concurrency=workers, num_cpus=cpus, num_gpus=gpus_per_worker or None,
        fn_constructor_kwargs={"model": model, "registry_path": str(registry.registry_path()), "settings": settings,
                               "format": format, "skip_existing": skip_existing, "overwrite": overwrite,
                               "max_pixels": max_pixels},
    )
    results = ((row["source"], row["reason"] or None) for row in restored.iter_rows())
    return batch.report(results, len(jobs), "restored")
