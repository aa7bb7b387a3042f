"""Score Distillation Sampling on latents, as Live-Sketch does it with an epsilon-predicting video model.

The denoiser is asked how it would denoise a noised copy of the current latents; the difference between its
classifier-free-guided noise estimate and the noise actually added is the direction that makes the video more
likely under the prompt. It is injected as a gradient, never back-propagated through the denoiser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

# Timesteps are drawn uniformly from [T_MIN, T_MAX): very small t carries no signal, very large t no sketch.
T_MIN = 50
T_MAX = 950

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""(noisy latents (B, ...), timesteps (B,)) -> (unconditional, conditional) noise estimates, each like the latents."""


class NoiseSchedule(Protocol):
    """What SDS needs of a diffusers noise scheduler (DDIMScheduler, DDPMScheduler, ...)."""

    alphas_cumprod: torch.Tensor

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor: ...


def sds_losses(
    latents: torch.Tensor,
    predict_noise: NoisePredictor,
    scheduler: NoiseSchedule,
    guidances: Sequence[float],
    generators: list[torch.Generator],
) -> torch.Tensor:
    """Per guidance strength and video of the batch, a scalar whose gradient w.r.t. the video's latents is the
    SDS gradient (1 - alpha_bar_t) (eps_hat - eps) at that guidance; shape (G, B) for latents (B, C, F, h, w).
    Every guidance shares one noised copy and one pair of noise estimates.

    `scheduler` is the model's noise scheduler. Video i's timestep and noise come from `generators[i]` (CPU),
    drawn as if it were alone, so a batch of independent stages gives each the draws of its own run. The value
    is half the squared norm of the SDS gradient: it shrinks as the video becomes what the prior expects.
    """
    train_steps = len(scheduler.alphas_cumprod)
    timesteps, noises = [], []
    for generator in generators:
        timesteps.append(torch.randint(T_MIN, min(T_MAX, train_steps), (1,), generator=generator))
        noises.append(torch.randn((1, *latents.shape[1:]), generator=generator))
    timestep = torch.cat(timesteps)
    noise = torch.cat(noises).to(device=latents.device, dtype=latents.dtype)
    weights = [1.0 - scheduler.alphas_cumprod[t].item() for t in timestep]
    weight = torch.tensor(weights, dtype=torch.float32, device=latents.device).view(-1, *[1] * (latents.dim() - 1))
    with torch.no_grad():
        noisy = scheduler.add_noise(latents.detach(), noise, timestep.to(latents.device))
        noise_uncond, noise_cond = predict_noise(noisy, timestep.to(latents.device))
        uncond, difference = noise_uncond.float(), noise_cond.float() - noise_uncond.float()
        gradients = [
            torch.nan_to_num(weight * (uncond + guidance * difference - noise.float()), nan=0.0, posinf=0.0, neginf=0.0)
            for guidance in guidances
        ]
    # d/dz 0.5 * |z - (z - g)|^2 = g: the gradient reaches the latents exactly, the value reports |g|^2 / 2.
    return torch.stack(
        [0.5 * (latents.float() - (latents.detach().float() - g)).pow(2).flatten(1).sum(1) for g in gradients]
    )
