"""The `local` backend (the default): a run's cells one after another in this process."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmark.run.backends import BackendSettings, Progress, register_backend
from benchmark.run.engine import CellResult, Plan, compute, describe
from benchmark.spec.validate import check_device
from mmrb.core.errors import MmrbError

if TYPE_CHECKING:
    from benchmark.run.backends import Pending


@register_backend("local")
@dataclass(frozen=True)
class LocalBackend:
    """Cells one after another in this process (the default). `torch_threads`: torch's intra-op threads for the
    run's attacks and scoring (default: torch's own, one per core); trainings run under the canonical numerical
    setting whatever it is (`wrappers.numerics.canonical_numerics`), and the attacks' figures were measured not to
    depend on it (docs/models.md, "Same figures everywhere")."""

    torch_threads: int | None = None

    name = "local"

    @classmethod
    def from_settings(cls, settings: BackendSettings) -> LocalBackend:
        """The local backend with the CLI's `--torch-threads`; a Ray setting given is refused."""
        ray_only = dict(address=settings.address, num_gpus=settings.num_gpus or None, local_cpus=settings.local_cpus)
        given = [k for k, v in ray_only.items() if v]
        if given:
            raise MmrbError(f"{', '.join('--' + k.replace('_', '-') for k in given)}: Ray settings; add --backend ray")
        return cls(settings.torch_threads)

    def check(self, device: str) -> None:
        check_device(device)
        if self.torch_threads is not None and self.torch_threads < 1:
            raise MmrbError(f"--torch-threads {self.torch_threads}: give 1 or more")

    def describe(self) -> str:
        return "local backend" + (f", {self.torch_threads} torch thread(s)" if self.torch_threads else "")

    def execute(self, plan: Plan, pending: Pending, progress: Progress) -> Iterator[CellResult]:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(self.torch_threads or threads)
        try:
            work = plan.work()
            for cell, key in pending:
                progress.note(describe(cell))
                yield compute(work, cell, key)
        finally:
            torch.set_num_threads(threads)
