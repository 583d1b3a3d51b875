"""The assistant's embedding path against encoding photos at request time.

One assistant turn with N candidate items, three ways, on the same machine in one run:
1. embedding path (ours): look up N item embeddings -> projector -> LM prefill of the prompt
   with N*k item tokens -> greedy decode of a fixed number of tokens;
2. default stack at request time: read, decode and encode the N photos with the image tower
   -> the fusion model's image head -> projector -> the same LM turn;
3. Qwen3-VL-2B shape: its vision tower (published vision configuration, random weights:
   time and FLOPs do not depend on the values) encodes the N photos at a resolution, and
   the LM prefills the resulting visual tokens ((R/32)^2 per image) instead of N*k tokens.
The timed LM is the settings' (SmolLM2-135M by default) so the run fits this machine; FLOPs are also
counted analytically for the real Qwen3-VL-2B text model.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from torch.utils.flop_counter import FlopCounterMode

from tastegraph.artifacts import atomic_path, write_json
from tastegraph.assistant.lm import ItemLM, lm_hidden_size
from tastegraph.assistant.models import DEFAULT_LM, cached_lm
from tastegraph.assistant.projector import ItemProjector, ProjectorConfig
from tastegraph.embeddings.fusion import FusionConfig, FusionModel
from tastegraph.encoders.image import EfficientNetLite0Tower, decode_rgb

# Decoder shapes for analytic FLOPs (from the models' published configs).
SMOLLM2_135M = {
    "hidden": 576,
    "inter": 1536,
    "layers": 30,
    "heads": 9,
    "kv_heads": 3,
    "head_dim": 64,
    "vocab": 49152,
}
QWEN3_VL_2B_TEXT = {
    "hidden": 2048,
    "inter": 6144,
    "layers": 28,
    "heads": 16,
    "kv_heads": 8,
    "head_dim": 128,
    "vocab": 151936,
}
# Qwen3-VL-2B's vision tower.
PATCH, FRAMES, MERGE, VISION_OUT = 16, 2, 2, 2048
QWEN3_VL_2B_VISION: dict[str, Any] = {
    "depth": 24,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_heads": 16,
    "patch_size": PATCH,
    "temporal_patch_size": FRAMES,
    "spatial_merge_size": MERGE,
    "out_hidden_size": VISION_OUT,
    "deepstack_visual_indexes": [5, 11, 17],
    "in_channels": 3,
}


@dataclass
class BenchConfig:
    items: int = 8  # candidates per turn (N)
    tokens: int = 4  # soft tokens per item (k)
    resolutions: tuple[int, ...] = (256,)  # photo sizes for the Qwen3-VL-2B-shape path
    decode: int = 16  # tokens generated per turn
    repeats: int = 5  # timed turns per path (the Qwen3-VL path: at most vision_repeats)
    vision_repeats: int = 2
    cpu_hour_usd: float = 0.10  # price of this machine (2 cores) per hour
    gpu_hour_usd: float = 2.50  # price of one GPU per hour
    gpu_tflops: float = 200.0  # effective GPU throughput assumed for the GPU cost estimate
    language_model: str = DEFAULT_LM  # the LM timed (assistant/models.py)


@dataclass
class PathResult:
    name: str
    median_s: float
    p90_s: float
    first_token_s: float  # median time to the first generated token
    # Per turn, counted while running (timed LM and tower) by torch's FlopCounterMode, which
    # does not see the attention products of CPU scaled-dot-product attention.
    flops: float
    qwen3_vl_2b_flops: float  # per turn with Qwen3-VL-2B's text model (analytic) instead
    peak_memory_mb: float
    prompt_tokens: int
    extra: dict[str, float] = field(default_factory=dict)


# -- analytic FLOPs ------------------------------------------------------------------------


def decoder_flops(shape: dict[str, int], prompt: int, decode: int) -> float:
    """Multiply-adds x 2 of a decoder-only LM: prefill `prompt` tokens, then `decode` more."""
    d, layers = shape["hidden"], shape["layers"]
    attn_width = shape["heads"] * shape["head_dim"]
    kv_width = shape["kv_heads"] * shape["head_dim"]
    per_token = layers * 2 * (d * attn_width * 2 + d * kv_width * 2 + 3 * d * shape["inter"])
    head = 2 * d * shape["vocab"]

    def attention(context: float) -> float:  # scores and weighted sum over `context` keys
        return layers * 4 * attn_width * context

    prefill = prompt * per_token + attention(prompt / 2) * prompt + head
    steps = sum(per_token + head + attention(prompt + t) for t in range(1, decode))
    return float(prefill + steps)


def vision_flops(shape: dict[str, Any], resolution: int) -> float:
    """Qwen3-VL vision tower on one square photo."""
    d, inter = shape["hidden_size"], shape["intermediate_size"]
    patches = (resolution // shape["patch_size"]) ** 2
    patch_in = shape["in_channels"] * shape["temporal_patch_size"] * shape["patch_size"] ** 2
    merged = patches // shape["spatial_merge_size"] ** 2
    merge_in = d * shape["spatial_merge_size"] ** 2
    per_layer = 2 * patches * (4 * d * d + 2 * d * inter) + 4 * patches * patches * d
    mergers = 1 + len(shape["deepstack_visual_indexes"])
    merger = 2 * merged * (merge_in * merge_in + merge_in * shape["out_hidden_size"])
    return float(2 * patches * patch_in * d + shape["depth"] * per_layer + mergers * merger)


def visual_tokens(resolution: int) -> int:
    return (resolution // (PATCH * MERGE)) ** 2


# -- measuring -----------------------------------------------------------------------------


@contextmanager
def peak_memory() -> Iterator[list[float]]:
    """Yields a list that holds, afterwards, the peak resident memory (MB) seen meanwhile."""
    process, peak, done = psutil.Process(), [0.0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss / 2**20)
            done.wait(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def lm_turn(lm: ItemLM, start: float, embeds: torch.Tensor, decode: int) -> tuple[float, float]:
    """Prefill the (1, T, H) input embeddings, then greedy-decode `decode` tokens with the KV
    cache; returns (seconds to the first token, seconds in all) since `start`, the
    perf_counter time the turn began."""
    with torch.inference_mode():
        out = lm.model(inputs_embeds=embeds, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
        first = time.perf_counter() - start
        cache = out.cache
        for _ in range(decode - 1):
            out = lm.model(input_ids=token, cache=cache, use_cache=True)
            cache, token = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
    return first, time.perf_counter() - start


def timed(
    turn: Callable[[], tuple[float, float]], repeats: int
) -> tuple[list[float], list[float], float]:
    """(first-token times, totals, FLOPs of one turn): one counted warm-up turn, then timed."""
    with FlopCounterMode(display=False) as counter:
        turn()
    firsts, totals = [], []
    for _ in range(repeats):
        first, total = turn()
        firsts.append(first)
        totals.append(total)
    return firsts, totals, float(counter.get_total_flops())


def result(
    name: str,
    firsts: list[float],
    totals: list[float],
    flops: float,
    qwen_flops: float,
    peak: float,
    prompt: int,
    **extra: float,
) -> PathResult:
    return PathResult(
        name,
        float(np.median(totals)),
        float(np.percentile(totals, 90)),
        float(np.median(firsts)),
        flops,
        qwen_flops,
        peak,
        prompt,
        dict(extra),
    )


# -- the three paths -----------------------------------------------------------------------


def prompt_ids(lm: ItemLM, items: int, tokens_per_item: int) -> torch.Tensor:
    placeholder = lm.item_placeholder[: len(lm.item_placeholder) // lm.projector.config.tokens]
    lines = [f"[{i + 1}] {placeholder * tokens_per_item}" for i in range(items)]
    request = "I need something in black for the office. Which of these fits best?\n"
    return lm.chat_ids([{"role": "user", "content": request + "\n".join(lines)}])


def with_tokens(lm: ItemLM, ids: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Text embeddings of ids with `tokens` (n, H) written over the placeholders."""
    embeds: torch.Tensor = lm.model.get_input_embeddings()(ids)
    return embeds.masked_scatter((ids == lm.item_token_id)[..., None], tokens.to(embeds.dtype))


def patches(photo: bytes, resolution: int) -> torch.Tensor:
    """One photo as Qwen3-VL vision input: (patches, 3 * 2 * 16 * 16), the frame repeated
    over the temporal patch as the Qwen processor does for still images."""
    image = decode_rgb(photo).resize((resolution, resolution))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)  # (R, R, 3)
    grid = resolution // PATCH
    x = pixels.permute(2, 0, 1).reshape(3, grid, PATCH, grid, PATCH).permute(1, 3, 0, 2, 4)
    x = x.reshape(grid * grid, 3, 1, PATCH, PATCH).expand(-1, -1, FRAMES, -1, -1)
    return x.reshape(grid * grid, -1)


def run_paths(config: BenchConfig, photos: list[bytes], workdir: Path) -> list[PathResult]:
    torch.manual_seed(0)
    n, k = config.items, config.tokens
    folder = cached_lm(workdir, config.language_model)
    projector = ItemProjector(ProjectorConfig(hidden_size=lm_hidden_size(folder), tokens=k))
    lm = ItemLM.load(folder, projector)
    results = []
    catalog = torch.nn.functional.normalize(torch.randn(25_000, 256), dim=-1)  # item table
    rows = torch.randint(0, len(catalog), (n,))
    ids = prompt_ids(lm, n, k)

    def embedding_turn() -> tuple[float, float]:
        start = time.perf_counter()
        with torch.inference_mode():
            embeds = lm.embed(ids, catalog[rows])
        return lm_turn(lm, start, embeds, config.decode)

    with peak_memory() as peak:
        firsts, totals, flops = timed(embedding_turn, config.repeats)
    prompt = ids.shape[1]
    results.append(
        result(
            "embedding path (ours)",
            firsts,
            totals,
            flops,
            decoder_flops(QWEN3_VL_2B_TEXT, prompt, config.decode),
            peak[0],
            prompt,
        )
    )

    results.append(default_stack_path(config, lm, ids, photos[:n]))
    gc.collect()
    for resolution in config.resolutions:
        results.append(qwen_path(config, lm, photos[:n], resolution))
        gc.collect()
    return results


def default_stack_path(
    config: BenchConfig, lm: ItemLM, ids: torch.Tensor, photos: list[bytes]
) -> PathResult:
    with peak_memory() as peak:
        tower = EfficientNetLite0Tower()
        fusion = FusionModel(FusionConfig(image_dim=tower.dim, text_dim=384)).eval()

        def turn() -> tuple[float, float]:
            start = time.perf_counter()
            with torch.inference_mode():
                batch = torch.stack([tower.preprocess(photo) for photo in photos])
                items = fusion.embed_images(torch.from_numpy(tower.encode(batch)))
                embeds = lm.embed(ids, items)
            return lm_turn(lm, start, embeds, config.decode)

        firsts, totals, flops = timed(turn, config.repeats)
        with torch.inference_mode(), FlopCounterMode(display=False) as tower_flops:
            batch = torch.stack([tower.preprocess(photo) for photo in photos])
            fusion.embed_images(torch.from_numpy(tower.encode(batch)))
    prompt = ids.shape[1]
    qwen = decoder_flops(QWEN3_VL_2B_TEXT, prompt, config.decode) + tower_flops.get_total_flops()
    name = "default stack, photos encoded per request"
    return result(name, firsts, totals, flops, qwen, peak[0], prompt)


def qwen_path(config: BenchConfig, lm: ItemLM, photos: list[bytes], resolution: int) -> PathResult:
    from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLVisionConfig
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel

    per_image = visual_tokens(resolution)
    ids = prompt_ids(lm, len(photos), per_image)
    hidden = lm.model.get_input_embeddings().embedding_dim
    grid = resolution // PATCH
    with peak_memory() as peak:
        vision: Any = Qwen3VLVisionModel(Qwen3VLVisionConfig(**QWEN3_VL_2B_VISION))
        vision.eval()
        to_lm = torch.nn.Linear(
            QWEN3_VL_2B_VISION["out_hidden_size"], hidden
        )  # width for the timed LM

        def turn() -> tuple[float, float]:
            start = time.perf_counter()
            with torch.inference_mode():
                pixels = torch.cat([patches(photo, resolution) for photo in photos])
                grid_thw = torch.tensor([[1, grid, grid]] * len(photos))
                merged = vision(pixels, grid_thw=grid_thw).pooler_output  # (N * v, 2048)
                embeds = with_tokens(lm, ids, to_lm(merged))
            return lm_turn(lm, start, embeds, config.decode)

        firsts, totals, flops = timed(turn, min(config.repeats, config.vision_repeats))
    prompt = ids.shape[1]
    qwen = decoder_flops(QWEN3_VL_2B_TEXT, prompt, config.decode)
    qwen += len(photos) * vision_flops(QWEN3_VL_2B_VISION, resolution)
    return result(
        f"Qwen3-VL-2B shape, photos at {resolution}x{resolution}",
        firsts,
        totals,
        flops,
        qwen,
        peak[0],
        prompt,
        visual_tokens_per_image=per_image,
    )


# -- report --------------------------------------------------------------------------------


def cost_per_million(result: PathResult, config: BenchConfig) -> tuple[float, float]:
    """(USD per million turns on this CPU machine, on a GPU): the CPU from the measured
    median; the GPU from the Qwen3-VL-2B FLOPs at the assumed effective throughput."""
    cpu = result.median_s * 1e6 / 3600 * config.cpu_hour_usd
    gpu = result.qwen3_vl_2b_flops / (config.gpu_tflops * 1e12) * 1e6 / 3600 * config.gpu_hour_usd
    return cpu, gpu


def table(results: list[PathResult], config: BenchConfig) -> str:
    ours = results[0]
    lines = [
        f"one assistant turn: N={config.items} items, k={config.tokens} tokens per item, "
        f"{config.decode} tokens decoded; timed LM {config.language_model} on this CPU",
        f"cost: ${config.cpu_hour_usd}/hour for this machine; GPU ${config.gpu_hour_usd}/hour at "
        f"an effective {config.gpu_tflops:g} TFLOP/s on the Qwen3-VL-2B FLOPs (flags)",
        "GFLOPs: counted on the timed models (attention products not seen by the counter); "
        "GFLOPs 2B: analytic, with Qwen3-VL-2B's text model (and its vision tower where used)",
        "",
        f"{'path':46} {'median':>8} {'p90':>8} {'TTFT':>8} {'prompt':>7} {'GFLOPs':>9} "
        f"{'GFLOPs 2B':>10} {'peak MB':>8} {'$/1M CPU':>9} {'$/1M GPU':>9} {'latency':>8} "
        f"{'compute':>8}",
    ]
    for r in results:
        cpu, gpu = cost_per_million(r, config)
        lines.append(
            f"{r.name:46} {r.median_s:7.3f}s {r.p90_s:7.3f}s {r.first_token_s:7.3f}s "
            f"{r.prompt_tokens:7d} {r.flops / 1e9:9.1f} {r.qwen3_vl_2b_flops / 1e9:10.1f} "
            f"{r.peak_memory_mb:8.0f} {cpu:9.2f} {gpu:9.2f} {r.median_s / ours.median_s:7.1f}x "
            f"{r.qwen3_vl_2b_flops / ours.qwen3_vl_2b_flops:7.1f}x"
        )
    lines.append("")
    for r in results[2:]:
        reduction = 1 - ours.qwen3_vl_2b_flops / r.qwen3_vl_2b_flops
        lines.append(
            f"{r.name}: latency {r.median_s / ours.median_s:.1f}x the embedding path "
            f"(target >= 20x), compute with Qwen3-VL-2B cut by {reduction:.1%} (target >= 90%)"
        )
    return "\n".join(lines)


def plot(results: list[PathResult], config: BenchConfig, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4))
    latency, flops = figure.subplots(1, 2)
    sizes = [224, 256, 384, 512, 768, 1024]
    ours = results[0]
    qwen = [r for r in results if "Qwen3-VL" in r.name]
    measured = [int(r.name.rsplit("x", 1)[1]) for r in qwen]
    latency.plot(measured, [r.median_s for r in qwen], "o-", label="Qwen3-VL-2B shape (measured)")
    latency.axhline(ours.median_s, color="tab:red", label="embedding path (ours)")
    latency.axhline(
        results[1].median_s, color="tab:grey", ls="--", label="default stack, photos per request"
    )
    latency.set(
        xlabel="photo resolution (px)", ylabel="seconds per turn", yscale="log", title="Latency"
    )
    latency.legend(fontsize=8)
    per_size = [
        decoder_flops(
            QWEN3_VL_2B_TEXT,
            ours.prompt_tokens + config.items * (visual_tokens(s) - config.tokens),
            config.decode,
        )
        + config.items * vision_flops(QWEN3_VL_2B_VISION, s)
        for s in sizes
    ]
    flops.plot(sizes, np.array(per_size) / 1e12, "o-", label="Qwen3-VL-2B, photos per request")
    flops.axhline(
        ours.qwen3_vl_2b_flops / 1e12, color="tab:red", label="Qwen3-VL-2B text, item tokens (ours)"
    )
    flops.set(
        xlabel="photo resolution (px)",
        ylabel="TFLOPs per turn",
        yscale="log",
        title=f"Compute with Qwen3-VL-2B (N={config.items})",
    )
    flops.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def run(data_dir: Path, workdir: Path, config: BenchConfig) -> list[PathResult]:
    photos = sorted((data_dir / "images").glob("*/*.jpg"))[: config.items]
    if len(photos) < config.items:
        raise FileNotFoundError(f"need {config.items} photos under {data_dir / 'images'}")
    results = run_paths(config, [p.read_bytes() for p in photos], workdir)
    print(table(results, config))
    folder = workdir / "reports"
    write_json(folder / "bench-assistant.json", {"config": asdict(config), "paths": results})
    plot(results, config, folder / "bench-assistant.png")
    print(f"\nwritten: {folder / 'bench-assistant.json'}, {folder / 'bench-assistant.png'}")
    return results
