"""The ModelScope text-to-video prior (UNet3D + SD VAE + CLIP text encoder), loaded component by component.

No diffusers pipeline class: SDS needs only the VAE encoder, the UNet, the text encoder (run once per prompt)
and the noise schedule. The weights come from a local folder in the diffusers layout or from the Hugging Face
hub, and are frozen: the gradient flows through the VAE encoder to the video and nowhere else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from diffusers.utils import is_accelerate_available
from huggingface_hub import constants as hub_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)
from torch.utils.checkpoint import checkpoint
from transformers import CLIPTextModel, CLIPTokenizer
from transformers.utils import logging as transformers_logging

from ..augment import augment
from ..devices import model_dtype
from ..download_progress import event_bar
from ..errors import UserError
from ..memory import MemoryPlan
from ..protocol import DEFAULT_MODEL
from ..sds import sds_losses
from . import Generators, Prior

DEFAULT_MODEL_LICENCE = "CC-BY-NC-4.0"
FP16_VARIANT = "fp16"
# In the low-memory mode the VAE encoder takes this many frames at a time, each chunk recomputed in the backward
# pass, so that only one chunk's activations are ever held.
LOW_MEMORY_FRAMES = 8

# What each component's subfolder must hold; a tokenizer saved by transformers 5 keeps only tokenizer.json.
_COMPONENT_FILES = {
    "scheduler": ("scheduler_config.json",),
    "tokenizer": ("vocab.json", "tokenizer.json"),
    "text_encoder": ("config.json",),
    "vae": ("config.json",),
    "unet": ("config.json",),
}
_WEIGHTED = ("text_encoder", "vae", "unet")
# Model weights load from safetensors only, unless the user names a folder here whose pickle (.bin) files they trust.
TRUST_PICKLE = "MULTISKETCH_TRUST_PICKLE_WEIGHTS"
_HUB_CONFIG_PATTERNS = ["model_index.json", "scheduler/*.json", "tokenizer/*", "*/config.json"]
_PIPELINE_CLASS = "TextToVideoSDPipeline"

# The noise schedule of ali-vilab/text-to-video-ms-1.7b (scheduler/scheduler_config.json).
SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


@contextmanager
def _without_progress_bars() -> Iterator[None]:
    """Reading or writing local files takes a moment: no bars for it on the user's terminal or log."""
    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


@dataclass
class ModelScopeComponents:
    """The five parts of a ModelScope-layout text-to-video model."""

    unet: UNet3DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler

    def save(self, folder: Path, variant: str | None = None) -> None:
        """Write the diffusers layout (one subfolder per component plus model_index.json) into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        with _without_progress_bars():
            self.unet.save_pretrained(folder / "unet", variant=variant)
            self.vae.save_pretrained(folder / "vae", variant=variant)
            self.text_encoder.save_pretrained(folder / "text_encoder", variant=variant)
            self.tokenizer.save_pretrained(folder / "tokenizer")
            self.scheduler.save_pretrained(folder / "scheduler")
        index: dict[str, object] = {"_class_name": _PIPELINE_CLASS}
        for name in ("scheduler", "text_encoder", "tokenizer", "unet", "vae"):
            part = getattr(self, name)
            index[name] = [type(part).__module__.split(".")[0], type(part).__name__]
        (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, dtype: torch.dtype) -> ModelScopeComponents:
        """Read every component from a local folder, preferring the fp16 weight files where they exist."""
        _check_layout(folder)
        variants = {name: _variant(folder / name) for name in _WEIGHTED}
        safe_only = None if trusts_pickle(folder) else True  # None: safetensors where present, else pickle
        diffusers_options = {
            "torch_dtype": dtype, "use_safetensors": safe_only, "low_cpu_mem_usage": is_accelerate_available()
        }  # fmt: skip
        try:
            with _without_progress_bars():
                return cls(
                    scheduler=DDIMScheduler.from_pretrained(folder / "scheduler"),
                    tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
                    text_encoder=CLIPTextModel.from_pretrained(
                        folder / "text_encoder",
                        dtype=dtype,
                        variant=variants["text_encoder"],
                        use_safetensors=safe_only,
                    ),
                    vae=AutoencoderKL.from_pretrained(folder / "vae", variant=variants["vae"], **diffusers_options),
                    unet=UNet3DConditionModel.from_pretrained(
                        folder / "unet", variant=variants["unet"], **diffusers_options
                    ),
                )
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot load the model in {folder}: {reason}") from None


def _check_layout(folder: Path) -> None:
    for name, files in _COMPONENT_FILES.items():
        if not any((folder / name / file).is_file() for file in files):
            expected = " or ".join(f"{name}/{file}" for file in files)
            raise UserError(
                f"the model folder {folder} lacks its {name} ({expected} not found): "
                "it must hold a text-to-video model in the diffusers layout (unet, vae, text_encoder, tokenizer, "
                "scheduler), e.g. a download of " + DEFAULT_MODEL
            )
    for name in _WEIGHTED:
        if list((folder / name).glob("*.safetensors")):
            continue
        if not list((folder / name).glob("*.bin")):
            raise UserError(f"the model folder {folder} lacks the weights of its {name} (no .safetensors or .bin file)")
        if not trusts_pickle(folder):
            raise UserError(
                f"the model folder {folder} has its {name} only as a .bin (pickle) file, which can run code when "
                f"loaded: convert it to safetensors, or if you trust its source set {TRUST_PICKLE}={folder}"
            )


def trusts_pickle(folder: Path) -> bool:
    """Whether the user named `folder` in TRUST_PICKLE (folders separated as in PATH)."""
    named = [entry for entry in os.environ.get(TRUST_PICKLE, "").split(os.pathsep) if entry]
    return any(Path(entry).expanduser().resolve() == folder.resolve() for entry in named)


def _variant(component: Path) -> str | None:
    return FP16_VARIANT if list(component.glob(f"*.{FP16_VARIANT}.*")) else None


def _looks_like_hub_id(model: str) -> bool:
    parts = model.split("/")
    plain = all(part and not part.startswith((".", "~")) and "\\" not in part for part in parts)
    return 1 <= len(parts) <= 2 and plain


def _download_help(model: str) -> str:
    licence = ""
    if model == DEFAULT_MODEL:
        licence = f" (its weights are licensed {DEFAULT_MODEL_LICENCE}: non-commercial use only)"
    return (
        f"download it on a machine with internet{licence}: `hf download {model} --local-dir DIR` "
        "(or `huggingface-cli download ...` with older tools), bring DIR here and pass --model DIR"
    )


def _fetch(model: str, on_download: Callable[..., None] | None) -> Path:
    """The local snapshot of a hub model (downloaded if needed): configs, tokenizer and one set of weights."""
    bars = {"tqdm_class": event_bar(on_download)} if on_download else {}
    try:
        patterns = [*_HUB_CONFIG_PATTERNS, f"*.{FP16_VARIANT}.safetensors"]
        folder = Path(snapshot_download(model, allow_patterns=patterns, **bars))
        lacking = [name for name in _WEIGHTED if not list((folder / name).glob("*.safetensors"))]
        if lacking:  # a model without fp16 files: take its full-precision ones
            patterns = [*_HUB_CONFIG_PATTERNS, *(f"{name}/*.safetensors" for name in lacking)]
            folder = Path(snapshot_download(model, allow_patterns=patterns, **bars))
    except GatedRepoError:  # before RepositoryNotFoundError, its base class
        raise UserError(
            f"the model {model!r} needs a Hugging Face login: run `hf auth login`, or {_download_help(model)}"
        ) from None
    except RepositoryNotFoundError:
        raise UserError(
            f"there is no model {model!r} on the Hugging Face hub and no folder of that name: "
            f"pass --model with a hub id (default {DEFAULT_MODEL}) or a local folder in the diffusers layout"
        ) from None
    except (LocalEntryNotFoundError, HfHubHTTPError):
        cause = "HF_HUB_OFFLINE is set" if hub_constants.HF_HUB_OFFLINE else "the Hugging Face hub cannot be reached"
        raise UserError(
            f"the model {model!r} is not on this machine and cannot be downloaded ({cause}): {_download_help(model)}"
        ) from None
    except OSError as exc:
        raise UserError(f"downloading the model {model!r} failed: {exc.strerror or exc}") from None
    return folder


def resolve_model(model: str, on_download: Callable[..., None] | None = None) -> Path:
    """The local folder of `model`: the folder itself, or the cached download of a Hugging Face hub id, whose
    progress goes to `on_download(bytes=..., total=..., rate=...)` while it downloads."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if not _looks_like_hub_id(model):
        raise UserError(
            f"there is no model folder {path}: pass --model with a folder in the diffusers layout "
            f"or a Hugging Face hub id such as {DEFAULT_MODEL}"
        )
    try:
        return _fetch(model, on_download)
    except HFValidationError:
        raise UserError(f"{model!r} is neither a model folder nor a valid Hugging Face hub id") from None


class ModelScopePrior(Prior):
    """SDS from a frozen ModelScope-layout text-to-video model (the real one, or a tiny random one for tests).

    SDS never decodes, so the VAE's decoder stays in main memory; `use_memory_plan` says how the rest uses the GPU.
    """

    def __init__(self, components: ModelScopeComponents, device: torch.device, name: str = "modelscope") -> None:
        self.name = name
        self.device = device
        self.dtype = components.unet.dtype
        for model in (components.unet, components.vae, components.text_encoder):
            model.requires_grad_(False)
            model.eval()
        for model in (components.unet, components.text_encoder, components.vae.encoder, components.vae.quant_conv):
            if model is not None:  # a VAE without quant_conv has None
                model.to(device)
        self.unet = components.unet
        self.vae = components.vae
        self.text_encoder = components.text_encoder
        self.tokenizer = components.tokenizer
        self.scheduler = components.scheduler
        self.latent_scale = float(components.vae.config.scaling_factor)
        self.low_memory = False
        self._embeddings: dict[str, torch.Tensor] = {}

    def use_memory_plan(self, plan: MemoryPlan) -> None:
        """Keep the VAE encoder's activations or recompute them; in the low-memory mode also embed prompts on the
        CPU (the text encoder leaves the GPU) and encode a few frames at a time.

        The guided UNet call stays whole even then: split into its two halves it took half again as long on an
        H200 and lowered the peak not at all, since a call without gradients keeps no activations."""
        if plan.vae_checkpointing:
            self.vae.enable_gradient_checkpointing()
        else:
            self.vae.disable_gradient_checkpointing()
        self.low_memory = plan.mode == "low"
        if self.low_memory and self.device.type != "cpu":
            self.text_encoder.to("cpu", torch.float32)  # fp16 matrix products are slow or missing on CPUs
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    @classmethod
    def load(cls, model: str, device: torch.device, size: int, name: str = "modelscope") -> ModelScopePrior:
        """Load `model` (hub id or folder) in `model_dtype`; UserError if `size` px does not fit it."""
        dtype = model_dtype(device)
        prior = cls(ModelScopeComponents.load(resolve_model(model), dtype), device, name)
        multiple = prior.size_multiple
        if size % multiple:
            raise UserError(
                f"render size {size} px does not fit the {name} model: use a multiple of {multiple} px "
                f"(e.g. {max(multiple, round(size / multiple) * multiple)})"
            )
        return prior

    @property
    def size_multiple(self) -> int:
        """Frames must be a multiple of this many pixels: the VAE's and the UNet's downsampling together."""
        vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        unet_factor = 2 ** (len(self.unet.config.down_block_types) - 1)
        return vae_factor * unet_factor

    def _embed(self, text: str) -> torch.Tensor:
        if text not in self._embeddings:
            tokens = self.tokenizer(
                text,
                padding="max_length",
                max_length=self.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            )
            with torch.no_grad():
                embedding = self.text_encoder(tokens.input_ids.to(self.text_encoder.device))[0]
            self._embeddings[text] = embedding.to(self.device, self.dtype)
        return self._embeddings[text]

    def condition(self, prompt: str, objects: Sequence[str]) -> torch.Tensor:
        """Text embeddings [unconditional, prompt], (2, tokens, dim): the same for every object of the stage."""
        return torch.cat([self._embed(""), self._embed(prompt)])

    def _predict_noise(
        self, embeddings: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both noise estimates of every video, in one UNet call; `embeddings` (2B, ...) are B unconditional then B
        conditional ones."""
        noisy = noisy.to(self.dtype)
        batch = torch.cat([noisy, noisy])
        noise = self.unet(batch, torch.cat([timesteps, timesteps]), encoder_hidden_states=embeddings).sample
        uncond, cond = noise.chunk(2)
        return uncond, cond

    def encode(self, videos: list[torch.Tensor], generators: list[torch.Generator]) -> torch.Tensor:
        """Scaled VAE latents (B, C, F, h, w) of videos (F, 3, H, W) in [0, 1], in one VAE call, differentiable
        in the videos; video i's posterior sample is drawn from `generators[i]`."""
        frames = torch.cat(videos).to(self.device, self.dtype) * 2.0 - 1.0
        if self.low_memory:
            chunks = [
                checkpoint(self._posterior, chunk, use_reentrant=False) for chunk in frames.split(LOW_MEMORY_FRAMES)
            ]
            mean, std = (torch.cat(parts) for parts in zip(*chunks, strict=True))
        else:
            mean, std = self._posterior(frames)
        per_video = mean.shape[0] // len(videos)
        draws = [torch.randn((per_video, *mean.shape[1:]), generator=g) for g in generators]
        latents = (mean + std * torch.cat(draws).to(self.device, self.dtype)) * self.latent_scale
        return latents.view(len(videos), per_video, *latents.shape[1:]).permute(0, 2, 1, 3, 4)

    def _posterior(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(frames).latent_dist
        return posterior.mean, posterior.std

    def loss(self, video: torch.Tensor, condition: object, guidance: float, generator: torch.Generator) -> torch.Tensor:
        return self.losses([video], [condition], guidance, [generator])[0]

    def losses(
        self, videos: list[torch.Tensor], conditions: list[object], guidance: float, generators: list[torch.Generator]
    ) -> torch.Tensor:
        return self.guided_losses(videos, conditions, [guidance], generators)[0]

    def guided_losses(
        self, videos: list[torch.Tensor], conditions: list[object], guidances: Sequence[float], generators: Generators
    ) -> torch.Tensor:
        """Live-Sketch's SDS (see `server.sds`), each video on one random view of its own, the batch through one
        VAE call and one UNet call whatever the number of guidance strengths."""
        embeddings = [c for c in conditions if isinstance(c, torch.Tensor)]
        assert len(embeddings) == len(conditions), "condition() of this prior gives the text embeddings"
        views = [augment(video, generator) for video, generator in zip(videos, generators, strict=True)]
        latents = self.encode(views, generators)
        both = torch.cat([*(e[:1] for e in embeddings), *(e[1:] for e in embeddings)])
        return sds_losses(latents, partial(self._predict_noise, both), self.scheduler, guidances, generators)
