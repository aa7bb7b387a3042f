"""A tiny random-weight ModelScope-layout model: the real code path (save, load, SDS) at test-sized cost.

Same diffusers and transformers classes as the real model, shrunk configs, weights drawn from a fixed seed.
It is saved in the diffusers layout and loaded back by exactly the loader the real model uses, so tests of
the tiny prior exercise the real loading and SDS code. Its gradients mean nothing; its shapes and dtypes do.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ..errors import UserError
from ..protocol import DEFAULT_MODEL
from .modelscope import SCHEDULER_CONFIG, ModelScopeComponents

FOLDER_NAME = "tiny-modelscope"
SEED = 0
TOKENS = 77


def default_folder() -> Path:
    """Where the tiny model lives unless the user names a folder: the MultiSketch cache."""
    if os.environ.get("MULTISKETCH_CACHE"):
        cache = Path(os.environ["MULTISKETCH_CACHE"])
    elif os.environ.get("XDG_CACHE_HOME"):
        cache = Path(os.environ["XDG_CACHE_HOME"]) / "multisketch"
    else:
        cache = Path.home() / ".cache" / "multisketch"
    return cache.expanduser() / FOLDER_NAME


def small_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer that spells words letter by letter: no download, ids fit any CLIP text encoder."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in string.ascii_lowercase + string.digits:
        vocab[symbol] = len(vocab)
        vocab[symbol + "</w>"] = len(vocab)
    with tempfile.TemporaryDirectory() as scratch:
        vocab_file, merges_file = Path(scratch) / "vocab.json", Path(scratch) / "merges.txt"
        vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n", encoding="utf-8")
        return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=TOKENS)


def small_vae(block_out_channels: tuple[int, ...], **config: float) -> AutoencoderKL:
    """A VAE of ModelScope's shape at a small width: 4 blocks (8 times smaller latents), 4 latent channels."""
    return AutoencoderKL(
        block_out_channels=block_out_channels,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        **config,
    )


def build_components() -> ModelScopeComponents:
    """The tiny model with weights from a fixed seed (the caller's random state is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        unet = UNet3DConditionModel(
            block_out_channels=(8, 8),
            layers_per_block=1,
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
            cross_attention_dim=8,
            attention_head_dim=4,
            norm_num_groups=2,
        )
        # Four blocks, as in the real VAE, so that latents are 1/8 of the frame size.
        vae = small_vae((8, 8, 8, 8), norm_num_groups=2, sample_size=64, scaling_factor=0.18215)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=8,
                intermediate_size=16,
                num_attention_heads=2,
                num_hidden_layers=2,
                vocab_size=128,
                max_position_embeddings=TOKENS,
                projection_dim=8,
                hidden_act="gelu",
                layer_norm_eps=1e-5,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        )
    return ModelScopeComponents(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=small_tokenizer(),
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG),  # the real schedule: it costs nothing
    )


def ensure_tiny_model(model: str) -> Path:
    """The folder of the tiny model for a job's `model` setting, built and saved there first if it is empty.

    `DEFAULT_MODEL` (the real model's id, the CLI's default) means the default folder in the cache.
    """
    folder = default_folder() if model == DEFAULT_MODEL else Path(model).expanduser()
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    if folder.exists():
        raise UserError(f"the tiny model's folder {folder} is a file: pass --model with a folder")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    except OSError as exc:
        raise UserError(f"cannot write the tiny model into {folder}: {exc.strerror or exc}") from None
    # Built beside the target and moved in at once: an interrupted build never leaves half a model behind.
    try:
        build_components().save(scratch)
        try:
            if folder.exists():
                folder.rmdir()
            scratch.rename(folder)
        except OSError:
            if not (folder.is_dir() and any(folder.iterdir())):  # unless another process has just saved one
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder
