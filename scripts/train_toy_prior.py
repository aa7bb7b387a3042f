"""Train the learned known-answer prior (`--prior toy`): a small ModelScope-layout text-to-video model.

The data are synthetic sketch clips whose motion the caption states ("the ball moves up", "the star grows and
the box moves left"): procedural shapes and the objects of the project's own examples, drawn by the engine's
rasterizer, with Live-Sketch's augmentation on half of them (SDS shows the model augmented views). First an
AutoencoderKL (8x smaller latents, as ModelScope's) learns to encode frames, then a UNet3DConditionModel learns
to denoise the latents of clips given the caption embedding of a frozen random CLIP text encoder (each caption
gets its own embedding; the model learns what they mean). Then DDIM samples of the model alone are checked for
moving as their captions say, and everything is saved in the diffusers layout with a model card.

    python scripts/train_toy_prior.py OUT_DIR [--seed 0] [--minutes 5] [--device cuda] [--resume EARLIER_OUT_DIR]

Reproducible from its seed up to GPU nondeterminism. On an H200 a run takes about 3 minutes plus --minutes;
`--resume` trains an earlier run's UNet further (its VAE and text encoder stay), so training can span runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from diffusers.models.attention_processor import AttnProcessor
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.motion_check import judge, measure_pixels  # noqa: E402
from server.augment import random_view  # noqa: E402
from server.priors.modelscope import SCHEDULER_CONFIG, ModelScopeComponents  # noqa: E402
from server.priors.tiny import small_vae  # noqa: E402
from server.priors.toy import MOTIONS, caption  # noqa: E402
from server.protocol import TOY_SETTINGS_FILE  # noqa: E402
from server.render import render  # noqa: E402
from server.sketch import chain_segments, load_svg  # noqa: E402
from server.tables import read_stroke_table  # noqa: E402

FRAMES = 8
SIZE = 64
DEFAULT_STEPS = 150  # SDS iterations per stage that a toy job runs unless told otherwise
TOKENS = 24
TEXT_WIDTH = 64
# Small models are launch-bound on a GPU: a large batch costs little more per step. Temporal attention runs one
# sequence per (clip, latent pixel), and CUDA's grid takes at most 65,535 of them: 768 x 8 x 8 stays below.
BATCH = 768
LEARNING_RATE = 6e-4
WARMUP = 300  # steps
FINAL_LR_SHARE = 0.05  # of the peak learning rate, at the end of the time budget
LINE_WIDTH = 0.75  # px at 64 px: a 3 px line of a 256 px sketch
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Shape classes with the name a caption gives them; "scribble" (many short separate strokes) resembles real sketches.
SHAPES = ("ball", "ring", "box", "triangle", "star", "blob", "zigzag", "squiggle", "face", "scribble")
# Names a one-object caption may use instead, so that the model learns that the motion words matter, not the name.
NOUNS = (
    "object thing shape sketch drawing animal person man woman child cat dog bird fish horse car boat plane "
    "tree flower sun cloud house ball kite robot dragon rocket"
).split()
# The sampling check names shapes whose turning can be seen (a ball looks the same at every angle; a small face is
# mostly its round outline, and the pixel tracker misses 3 of 8 of its turns).
CHECK_NAMES = tuple(name for name in SHAPES if name not in ("ball", "ring", "face"))
TWO_OBJECTS = 0.3  # fraction of clips with two objects
EMPTY_CAPTION = 0.1  # fraction of captions dropped, for classifier-free guidance
AUGMENTED = 0.5  # fraction of clips shown through Live-Sketch's random view
# Turning is the hardest motion to learn (in 8 x 8 latents a turning shape barely changes its footprint):
# after 4 runs at equal shares the model still sampled turns at chance, so they get three shares each.
TURN_WEIGHT = 3.0
MOTION_WEIGHTS = np.array([TURN_WEIGHT if "turns" in phrase else 1.0 for phrase in MOTIONS])
MOTION_SHARES = MOTION_WEIGHTS / MOTION_WEIGHTS.sum()


# -- captions --------------------------------------------------------------------------------------------------------


def build_tokenizer(folder: Path) -> CLIPTokenizer:
    """A CLIP BPE tokenizer whose merges spell every caption word as one token; other words fall back to letters."""
    words = sorted({word for phrase in MOTIONS for word in phrase.replace("-", " - ").split()} | set(SHAPES))
    words = sorted(set(words) | set(NOUNS) | {"the", "and", "example"})
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in "abcdefghijklmnopqrstuvwxyz0123456789-'":
        vocab.setdefault(symbol, len(vocab))
        vocab.setdefault(symbol + "</w>", len(vocab))
    merges = []
    for word in words:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        merged = symbols[0]
        for symbol in symbols[1:]:
            merges.append(f"{merged} {symbol}")
            merged += symbol
            vocab.setdefault(merged, len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=TOKENS)


def build_text_encoder(vocab_size: int, width: int) -> CLIPTextModel:
    return CLIPTextModel(
        CLIPTextConfig(
            hidden_size=width,
            intermediate_size=2 * width,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=vocab_size,
            max_position_embeddings=TOKENS,
            projection_dim=width,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )


# -- shapes (unit size, centred on the mean of their control points) ---------------------------------------------


def _line(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.stack([a, a + (b - a) / 3, a + 2 * (b - a) / 3, b])


def _polyline(points: np.ndarray, closed: bool) -> list[np.ndarray]:
    ends = np.concatenate([points, points[:1]]) if closed else points
    return [np.concatenate([_line(a, b)[:-1] for a, b in zip(ends[:-1], ends[1:], strict=True)] + [ends[-1:]])]


def _smooth(points: np.ndarray, closed: bool) -> np.ndarray:
    """A Catmull-Rom curve through `points` as one cubic chain."""
    ring = (
        np.concatenate([points[-1:], points, points[:2]])
        if closed
        else np.concatenate([points[:1], points, points[-1:]])
    )
    count = len(points) if closed else len(points) - 1
    chain = [ring[1]]
    for i in range(count):
        p0, p1, p2, p3 = ring[i], ring[i + 1], ring[i + 2], ring[i + 3]
        chain += [p1 + (p2 - p0) / 6, p2 - (p3 - p1) / 6, p2]
    return np.array(chain)


def _circle(centre: np.ndarray, radius: float) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, 9)[:-1]
    return _smooth(centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1), closed=True)


def make_shape(kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Strokes (cubic chains) of one shape of class `kind`, about the unit disk."""
    if kind == "ball":
        strokes = [_circle(np.zeros(2), 1.0)]
    elif kind == "ring":
        strokes = [_circle(np.zeros(2), 1.0), _circle(np.zeros(2), rng.uniform(0.4, 0.7))]
    elif kind == "box":
        strokes = _polyline(np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float), closed=True)
    elif kind == "triangle":
        strokes = _polyline(np.array([[0, -1], [0.9, 0.7], [-0.9, 0.7]]), closed=True)
    elif kind == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        strokes = _polyline(np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None], closed=True)
    elif kind == "blob":
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(5, 8)))
        radii = rng.uniform(0.5, 1.0, len(angles))
        strokes = [_smooth(np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None], closed=True)]
    elif kind == "zigzag":
        count = rng.integers(4, 8)
        xs = np.linspace(-1, 1, count)
        strokes = _polyline(np.stack([xs, np.where(np.arange(count) % 2, 0.6, -0.6)], axis=1), closed=False)
    elif kind == "squiggle":
        strokes = [_smooth(rng.uniform(-1, 1, (rng.integers(4, 7), 2)), closed=False)]
    elif kind == "face":
        strokes = [
            _circle(np.zeros(2), 1.0),
            _circle(np.array([-0.35, -0.25]), 0.12),
            _circle(np.array([0.35, -0.25]), 0.12),
        ]
        strokes.append(_smooth(np.array([[-0.5, 0.3], [0.0, 0.55], [0.5, 0.3]]), closed=False))
    elif kind == "scribble":
        strokes = []
        for _ in range(rng.integers(6, 17)):
            start = rng.uniform(-0.9, 0.9, 2)
            strokes.append(start + np.cumsum(rng.normal(0, 0.25, (4, 2)), axis=0) - rng.normal(0, 0.25, 2))
    else:
        raise ValueError(kind)
    stretch = rng.uniform(0.7, 1.3, 2)
    angle = rng.uniform(0, 2 * np.pi)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return _normalised([(chain * stretch) @ turn.T for chain in strokes])


def _normalised(strokes: list[np.ndarray]) -> list[np.ndarray]:
    points = np.concatenate(strokes)
    centre = points.mean(axis=0)
    extent = np.abs(points - centre).max()
    return [(chain - centre) / extent for chain in strokes]


def example_objects() -> list[tuple[str, list[np.ndarray]]]:
    """The objects of the project's own examples (never the shared evaluation sketches), named as in their tables."""
    found = []
    for folder in sorted(EXAMPLES.iterdir()):
        sketch = load_svg(folder / "sketch.svg")
        for name, strokes in read_stroke_table(folder / "objects.tsv", len(sketch.strokes)).items():
            chains = [chain for index in strokes for chain in sketch.strokes[index].subpaths if len(chain) >= 4]
            found.append((name, _normalised(chains)))
    return found


# -- clips -----------------------------------------------------------------------------------------------------------


def motion_at(stated: str, amplitude: float, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: shift (F, 2) in canvas fractions, scale (F,), turn (F,) radians, from rest at frame 0."""
    motion = MOTIONS[stated]
    progress = np.linspace(0.0, 1.0, frames)
    shift = progress[:, None] * np.array(motion.shift) * amplitude
    scale = np.exp(progress * math.log(motion.scale) * amplitude)
    turn = progress * math.radians(motion.turn_degrees) * amplitude
    return shift, scale, turn


def place(strokes: list[np.ndarray], size: float, centre: np.ndarray, stated: str, amplitude: float) -> np.ndarray:
    """Segments (F, S, 4, 2) in render px of a unit shape drawn at `centre` (px) with `size` px radius, moving."""
    shift, scale, turn = motion_at(stated, amplitude, FRAMES)
    segments = np.concatenate([chain_segments(chain) for chain in strokes])
    cos, sin = np.cos(turn), np.sin(turn)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (F, 2, 2)
    moved = np.einsum("fij,skj->fski", rotation, segments) * (scale[:, None, None, None] * size)
    return moved + centre + shift[:, None, None] * SIZE


def random_clip(rng: np.random.Generator, examples: list) -> tuple[np.ndarray, str]:
    """One clip: segments (F, S, 4, 2) in render px and its caption."""
    count = 2 if rng.random() < TWO_OBJECTS else 1
    kinds = rng.choice(len(SHAPES) + len(examples), count, replace=False)
    motions = rng.choice(list(MOTIONS), count, replace=False, p=MOTION_SHARES)
    parts, named = [], []
    slots = [rng.uniform(0.3, 0.7, 2)] if count == 1 else two_slots(rng)
    for kind, stated, slot in zip(kinds, motions, slots, strict=True):
        if kind < len(SHAPES):
            name, strokes = SHAPES[kind], make_shape(SHAPES[kind], rng)
        else:
            name, strokes = examples[kind - len(SHAPES)]
        if count == 1 and rng.random() < 0.5:
            name = str(rng.choice(NOUNS))
        radius = rng.uniform(0.12, 0.22 if count == 2 else 0.3) * SIZE
        amplitude = rng.uniform(0.75, 1.25)
        parts.append(place(strokes, radius, slot * SIZE, str(stated), amplitude))
        named.append((name, str(stated)))
    return np.concatenate(parts, axis=1), caption(*named)


def two_slots(rng: np.random.Generator) -> list[np.ndarray]:
    first = rng.uniform(0.25, 0.75, 2)
    angle = rng.uniform(0, 2 * np.pi)
    second = np.clip(first + 0.42 * np.array([np.cos(angle), np.sin(angle)]), 0.2, 0.8)
    return [first, second]


def render_clips(clips: list[np.ndarray], device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """Videos (B, F, 3, SIZE, SIZE) of the clips; AUGMENTED of them seen through one random view each."""
    longest = max(clip.shape[1] for clip in clips)
    padded = np.full((len(clips), FRAMES, longest, 4, 2), -4.0 * SIZE)  # spare segments lie far off the canvas
    for i, clip in enumerate(clips):
        padded[i, :, : clip.shape[1]] = clip
    segments = torch.tensor(padded, dtype=torch.float32, device=device).flatten(0, 1)
    widths = torch.full((longest,), LINE_WIDTH, device=device)
    with torch.no_grad():
        videos = render(segments, widths, SIZE).view(len(clips), FRAMES, 3, SIZE, SIZE)
        for i in range(len(clips)):
            if torch.rand(1, generator=generator).item() < AUGMENTED:
                grid = random_view(SIZE, SIZE, generator).to(device)
                ink = F.grid_sample(1 - videos[i], grid.expand(FRAMES, SIZE, SIZE, 2), align_corners=True)
                videos[i] = 1 - ink
    return videos


# -- models ----------------------------------------------------------------------------------------------------------


def build_unet(text_width: int) -> UNet3DConditionModel:
    return UNet3DConditionModel(
        block_out_channels=(48, 96, 96),
        layers_per_block=1,
        sample_size=SIZE // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=text_width,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def train_vae(vae: AutoencoderKL, frames: torch.Tensor, steps: int, log) -> float:
    """Reconstruction with ink pixels weighted up (line drawings are mostly white) and a light KL term."""
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    generator = torch.Generator(device=frames.device).manual_seed(1)
    for step in range(steps):
        batch = frames[torch.randint(len(frames), (256,), device=frames.device, generator=generator)] * 2 - 1
        with torch.autocast(frames.device.type, dtype=torch.bfloat16):
            posterior = vae.encode(batch).latent_dist
            decoded = vae.decode(posterior.sample()).sample
        weight = 1.0 + 9.0 * (batch < 0.9).float()
        loss = (weight * (decoded.float() - batch) ** 2).mean() + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 500 == 0 or step == steps - 1:
            log(f"vae step {step} loss {loss.item():.4f}")
    return float(loss.item())


def learning_rate(step: int, elapsed: float, budget: float) -> float:
    """Warm up over WARMUP steps, then a cosine decay over the run's time budget down to FINAL_LR_SHARE of the peak.

    The schedule follows time, not steps, because a run is given minutes and its step rate is not known in advance.
    """
    decay = 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget)))
    return LEARNING_RATE * min(1.0, (step + 1) / WARMUP) * (FINAL_LR_SHARE + (1 - FINAL_LR_SHARE) * decay)


def train_unet(unet, latents, embeddings, empty, minutes: float, max_steps: int, log) -> tuple[int, float]:
    """epsilon prediction on ModelScope's noise schedule, captions dropped for guidance, until time or steps run out."""
    scheduler = DDIMScheduler(**SCHEDULER_CONFIG)
    alphas = scheduler.alphas_cumprod.to(latents.device)
    on_gpu = latents.device.type == "cuda"
    optimizer = torch.optim.AdamW(unet.parameters(), lr=LEARNING_RATE, weight_decay=0.01, fused=on_gpu)
    # Attention over 8 frames (or 64 latent pixels) with 6 to 12 channels a head: fused kernels pad and tile for long
    # sequences, and their backward took half of each step on an H200; plain batched matrix products are faster here.
    unet.set_attn_processor(AttnProcessor())
    generator = torch.Generator(device=latents.device).manual_seed(2)
    started, step, smoothed = time.monotonic(), 0, None
    budget = 60 * minutes
    while step < max_steps and time.monotonic() - started < budget:
        index = torch.randint(len(latents), (BATCH,), device=latents.device, generator=generator)
        clean = latents[index].float()
        condition = embeddings[index]
        dropped = torch.rand(len(index), device=latents.device, generator=generator) < EMPTY_CAPTION
        condition = torch.where(dropped[:, None, None], empty.expand_as(condition), condition)
        timestep = torch.randint(0, len(alphas), (len(index),), device=latents.device, generator=generator)
        noise = torch.randn(clean.shape, device=latents.device, generator=generator)
        alpha = alphas[timestep].view(-1, 1, 1, 1, 1)
        noisy = alpha.sqrt() * clean + (1 - alpha).sqrt() * noise
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, time.monotonic() - started, budget)
        with torch.autocast(latents.device.type, dtype=torch.bfloat16):
            predicted = unet(noisy, timestep, encoder_hidden_states=condition).sample
        loss = F.mse_loss(predicted.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        smoothed = loss.item() if smoothed is None else 0.98 * smoothed + 0.02 * loss.item()
        if step % 200 == 0:
            log(f"unet step {step} loss {smoothed:.4f} ({time.monotonic() - started:.0f} s)")
        step += 1
    return step, float(smoothed)


# -- the model alone: does it sample what its captions say? ----------------------------------------------------------


@torch.no_grad()
def sample_check(components: ModelScopeComponents, device, per_motion: int, guidance: float, log) -> dict[str, float]:
    """DDIM samples (50 steps) for every motion phrase; the share whose tracked motion goes the stated way."""
    scheduler = DDIMScheduler(**SCHEDULER_CONFIG)
    scheduler.set_timesteps(50)
    unet, vae = components.unet, components.vae
    scale = vae.config.scaling_factor
    empty = embed(components, [""], device)
    accuracy = {}
    generator = torch.Generator(device=device).manual_seed(3)
    for stated in MOTIONS:
        names = [CHECK_NAMES[i % len(CHECK_NAMES)] for i in range(per_motion)]
        condition = embed(components, [caption((name, stated)) for name in names], device)
        latents = torch.randn((per_motion, 4, FRAMES, SIZE // 8, SIZE // 8), device=device, generator=generator)
        for t in scheduler.timesteps:
            batch = torch.cat([latents, latents])
            with torch.autocast(device.type, dtype=torch.bfloat16):
                noise = unet(batch, t, encoder_hidden_states=torch.cat([empty.expand_as(condition), condition])).sample
            uncond, cond = noise.float().chunk(2)
            latents = scheduler.step(uncond + guidance * (cond - uncond), t, latents).prev_sample
        frames = latents.permute(0, 2, 1, 3, 4).flatten(0, 1) / scale
        video = ((vae.decode(frames).sample.float() + 1) / 2).clamp(0, 1).view(per_motion, FRAMES, 3, SIZE, SIZE)
        verdicts = [judge(stated, measure_pixels(clip.cpu()), SIZE, still_px=1.0) for clip in video]
        accuracy[stated] = float(np.mean(verdicts))
        log(f"samples '{stated}': {accuracy[stated]:.0%} go the stated way")
    return accuracy


def embed(components: ModelScopeComponents, captions: list[str], device) -> torch.Tensor:
    tokens = components.tokenizer(
        captions, padding="max_length", max_length=TOKENS, truncation=True, return_tensors="pt"
    )
    return components.text_encoder(tokens.input_ids.to(device))[0]


# -- the run ---------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the model into (diffusers layout)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips", type=int, default=40000, help="synthetic clips in the training pool")
    parser.add_argument("--vae-steps", type=int, default=2500)
    parser.add_argument("--minutes", type=float, default=5.0, help="time for the UNet's training")
    parser.add_argument("--max-steps", type=int, default=100000, help="UNet steps at most")
    parser.add_argument("--samples", type=int, default=32, help="DDIM samples per motion phrase in the check")
    parser.add_argument("--resume", type=Path, help="a model this script wrote: train its UNet further")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.enable_cudnn_sdp(False)  # its backward fails on small bf16 attention (seen on an H200)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {message}", flush=True)

    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    if args.resume:  # an earlier run's model: its VAE and text encoder stay, its UNet trains on
        components = ModelScopeComponents.load(args.resume, torch.float32)
        for model in (components.unet, components.vae, components.text_encoder):
            model.to(device)
        previous = {"runs": 1, **json.loads((args.resume / "training.json").read_text(encoding="utf-8"))}
    else:
        tokenizer = build_tokenizer(args.out / "tokenizer")
        components = ModelScopeComponents(
            unet=build_unet(TEXT_WIDTH).to(device),
            vae=small_vae((16, 32, 64, 64), norm_num_groups=16, sample_size=SIZE).to(device),
            text_encoder=build_text_encoder(len(tokenizer.get_vocab()), TEXT_WIDTH).to(device),
            tokenizer=tokenizer,
            scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
        )
        previous = {"vae_steps": 0, "unet_steps": 0, "minutes": 0.0}
    components.text_encoder.eval()
    examples = example_objects()
    videos, captions = [], []
    for first in range(0, args.clips, 512):
        batch = [random_clip(rng, examples) for _ in range(min(512, args.clips - first))]
        videos.append(render_clips([clip for clip, _ in batch], device, generator).to(torch.bfloat16))
        captions += [text for _, text in batch]
    videos = torch.cat(videos)
    log(f"{len(videos)} clips rendered, e.g. {captions[:3]}")

    if not args.resume:
        previous["vae_loss"] = train_vae(components.vae, videos[:, ::3].flatten(0, 1).float(), args.vae_steps, log)
        previous["vae_steps"] = args.vae_steps
    components.vae.eval().requires_grad_(False)
    with torch.no_grad():
        latents = []
        for first in range(0, len(videos), 1024):
            frames = videos[first : first + 1024].flatten(0, 1).float() * 2 - 1
            posterior = components.vae.encode(frames).latent_dist
            latents.append(posterior.sample().view(-1, FRAMES, 4, SIZE // 8, SIZE // 8).permute(0, 2, 1, 3, 4))
        latents = torch.cat(latents)
        if not args.resume:
            components.vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
        scale = components.vae.config.scaling_factor
        latents = (latents * scale).to(torch.bfloat16)
        embeddings = torch.cat(
            [embed(components, captions[i : i + 4096], device) for i in range(0, len(captions), 4096)]
        )
        empty = embed(components, [""], device)
    log(f"latents {tuple(latents.shape)}, scaling factor {scale:.4f}")
    unet_steps, unet_loss = train_unet(components.unet, latents, embeddings, empty, args.minutes, args.max_steps, log)
    components.unet.eval()
    accuracy = {g: sample_check(components, device, args.samples, g, log) for g in (5.0, 10.0)}

    for model in (components.unet, components.vae, components.text_encoder):
        model.to("cpu", torch.float16)
    components.save(args.out, variant="fp16")
    settings = {"frames": FRAMES, "size": SIZE, "steps": DEFAULT_STEPS}
    (args.out / TOY_SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    record = {
        "seed": args.seed, "clips": len(videos), "vae_steps": previous["vae_steps"],
        "vae_loss": previous["vae_loss"], "unet_steps": previous["unet_steps"] + unet_steps,
        "unet_batch": BATCH, "unet_loss": unet_loss, "sampling_accuracy": accuracy,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__,
        "minutes": round(previous["minutes"] + (time.monotonic() - started) / 60, 1),
        "runs": previous.get("runs", 0) + 1,
    }  # fmt: skip
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(f"saved to {args.out}: {json.dumps(record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
