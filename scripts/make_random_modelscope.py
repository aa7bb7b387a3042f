"""Build ModelScope text-to-video at its real configs with random weights, saved as the hub repo lays it out.

With it `--prior modelscope --model FOLDER` runs the real-size path (loading, memory, time per step) on a
machine that cannot download the real weights. The motion it produces means nothing.

    python scripts/make_random_modelscope.py FOLDER [--device cuda]

Weights are drawn on the GPU when there is one (seconds; on a CPU it takes minutes) and saved as fp16
safetensors under the `fp16` variant names, as in ali-vilab/text-to-video-ms-1.7b.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.priors.modelscope import FP16_VARIANT, SCHEDULER_CONFIG, ModelScopeComponents  # noqa: E402
from server.priors.tiny import small_tokenizer  # noqa: E402

# ali-vilab/text-to-video-ms-1.7b: unet/config.json, vae/config.json, text_encoder/config.json.
UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 64,
    "block_out_channels": (320, 640, 1280, 1280),
    "cross_attention_dim": 1024,
    "down_block_types": ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
    "in_channels": 4,
    "layers_per_block": 2,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 32,
    "up_block_types": ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
}
VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 23,
    "hidden_act": "gelu",
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
    "projection_dim": 512,
    "layer_norm_eps": 1e-05,
}


def build(device: torch.device, seed: int) -> ModelScopeComponents:
    """All five components, the networks in fp16 on `device`."""
    torch.manual_seed(seed)
    with device:
        unet = UNet3DConditionModel(**UNET_CONFIG)
        vae = AutoencoderKL(**VAE_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_ENCODER_CONFIG))
    return ModelScopeComponents(
        unet=unet.half(),
        vae=vae.half(),
        text_encoder=text_encoder.half(),
        tokenizer=small_tokenizer(),
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where to save the model (created; must be empty or absent)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.folder.exists() and any(args.folder.iterdir()):
        parser.error(f"{args.folder} is not empty")
    started = time.monotonic()
    components = build(torch.device(args.device), args.seed)
    built = time.monotonic()
    components.save(args.folder, variant=FP16_VARIANT)
    count = sum(p.numel() for m in (components.unet, components.vae, components.text_encoder) for p in m.parameters())
    print(
        f"{count / 1e9:.2f} B parameters: built on {args.device} in {built - started:.1f} s, "
        f"saved to {args.folder} in {time.monotonic() - built:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
