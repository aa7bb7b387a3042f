"""The prior: what judges a rendered video and says which way it should change.

Every prior answers two questions: how to prepare for a stage (`condition`, done once per stage) and how far a
video is from what it wants (`loss`, whose gradient is the direction). The rest has defaults: `losses` and
`guided_losses` score several stages' videos, or several guidance strengths, at once (one `loss` call each, unless
the prior can batch the work), and `use_memory_plan` fits the prior to the job's GPU memory (a no-op unless it has
something to trade). The optimizer knows nothing else about it, so a diffusion model, a tiny random test model and
a known-answer target are interchangeable.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..errors import UserError

if TYPE_CHECKING:
    from ..memory import MemoryPlan
    from ..protocol import JobSpec
    from ..sketch import Sketch


Generators = list[torch.Generator]
"""One random generator (CPU) per video of a batch: each stage's draws are its own."""


class Prior(abc.ABC):
    """A score for videos of the sketch; its gradient drives the motion."""

    name: str

    @abc.abstractmethod
    def condition(self, prompt: str, objects: Sequence[str]) -> object:
        """Precomputed conditioning for one stage that animates `objects` (names) under `prompt`."""

    @abc.abstractmethod
    def loss(self, video: torch.Tensor, condition: object, guidance: float, generator: torch.Generator) -> torch.Tensor:
        """A scalar for `video` (F, 3, H, W) in [0, 1]; its gradient w.r.t. the video is the prior's direction.

        Every random draw comes from `generator` (CPU), so a run can be reproduced and resumed.
        """

    def use_memory_plan(self, plan: MemoryPlan) -> None:  # noqa: B027 (a default that does nothing, on purpose)
        """Adapt to how much GPU memory the job may use (server/memory.py); a prior with nothing to trade ignores it."""

    def losses(
        self, videos: list[torch.Tensor], conditions: list[object], guidance: float, generators: list[torch.Generator]
    ) -> torch.Tensor:
        """`loss` of several independent stages' videos at once, shape (B,): each depends on its own video only,
        so one backward pass of their sum gives each stage its own gradient. A prior that can batch the work
        overrides this; the results are those of one `loss` call each."""
        return torch.stack(
            [self.loss(v, c, guidance, g) for v, c, g in zip(videos, conditions, generators, strict=True)]
        )

    def guided_losses(
        self, videos: list[torch.Tensor], conditions: list[object], guidances: Sequence[float], generators: Generators
    ) -> torch.Tensor:
        """`losses` at several guidance strengths from the same random draws, shape (G, B): the shared pass's
        scores (one render serving the local and the global pass). A prior that can share the work overrides
        this; here each strength replays the draws."""
        states = [generator.get_state() for generator in generators]
        scores = []
        for guidance in guidances:
            for generator, state in zip(generators, states, strict=True):
                generator.set_state(state)
            scores.append(self.losses(videos, conditions, guidance, generators))
        return torch.stack(scores)


def load_prior(spec: JobSpec, sketch: Sketch, device: torch.device) -> Prior:
    """The prior the job asks for, ready on `device`; UserError when it cannot be had (model missing, bad plan)."""
    # Imported here: the diffusion priors pull in diffusers and transformers, the target prior does not.
    if spec.prior == "target":
        from .target import TargetPrior

        return TargetPrior(spec, sketch, device)
    from .modelscope import ModelScopePrior

    if spec.prior == "tiny":
        from .tiny import ensure_tiny_model

        return ModelScopePrior.load(str(ensure_tiny_model(spec.model)), device, spec.size, name="tiny")
    if spec.prior == "toy":
        from .toy import load_toy_prior

        return load_toy_prior(device, spec.size)
    if spec.prior == "modelscope":
        return ModelScopePrior.load(spec.model, device, spec.size)
    raise UserError(f"unknown prior {spec.prior!r}: use modelscope, tiny, toy or target")
