"""A causal language model that reads items: projected item tokens at placeholder positions.

A prompt marks each item with k copies of the placeholder token; `embed` writes the item's
k soft tokens (from the projector) over their input embeddings, and the model runs on
`inputs_embeds`. Works with any transformers causal LM; assistant/models.py says where each
comes from and caches it in the workdir.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

from tastegraph.assistant.head import AFFINITY_LR_SCALE, ChoiceHead
from tastegraph.assistant.models import DEFAULT_LM, cached_lm
from tastegraph.assistant.projector import ItemProjector

ITEM_TOKEN = "<|item|>"
AllowedTokens = Callable[[list[int]], list[int]]  # generated ids -> ids the next may take
STREAM_TIMEOUT = 120.0  # seconds a reader waits for the next piece before giving up
LORA_TARGETS = ("q_proj", "v_proj")


def lm_hidden_size(folder: Path) -> int:
    """The input embedding width of the LM saved in folder (transformers config.json)."""
    return int(json.loads((folder / "config.json").read_text())["hidden_size"])


class ItemLM:
    """A causal LM plus the projector that turns item embeddings into its input tokens and
    the head that reads which candidate item it picks."""

    def __init__(self, model: Any, tokenizer: Any, projector: ItemProjector) -> None:
        hidden = model.get_input_embeddings().embedding_dim
        if projector.config.hidden_size != hidden:
            raise ValueError(
                f"the projector makes {projector.config.hidden_size}-wide tokens, but the LM's "
                f"hidden size is {hidden}"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.projector = projector
        self.head = ChoiceHead(hidden)
        self.head_trained = False  # set once stage 2 trained the head or its weights loaded
        self.lora: dict[str, Any] | None = None  # LoRA settings, once add_lora ran
        model.requires_grad_(False)  # the LM stays frozen; projector, head (and LoRA) learn
        if ITEM_TOKEN not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"additional_special_tokens": [ITEM_TOKEN]})
        self.item_token_id: int = tokenizer.convert_tokens_to_ids(ITEM_TOKEN)
        if self.item_token_id >= model.get_input_embeddings().num_embeddings:
            # No free row for the placeholder: one more. Its own embedding is never read
            # (item tokens overwrite it) and generation never emits it.
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)

    @classmethod
    def load(cls, folder: Path, projector: ItemProjector) -> ItemLM:
        model: Any = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model.eval()
        return cls(model, tokenizer, projector)

    def add_lora(self, rank: int, alpha: int | None = None) -> dict[str, Any]:
        """Wrap the LM with trainable LoRA adapters (peft) on its attention's query and value
        projections; the base weights stay frozen. Returns the settings that rebuild it."""
        from peft import LoraConfig, get_peft_model

        alpha = alpha or 2 * rank
        config = LoraConfig(
            r=rank, lora_alpha=alpha, target_modules=list(LORA_TARGETS), lora_dropout=0.0
        )
        spec = {"rank": rank, "alpha": alpha, "targets": list(LORA_TARGETS)}
        self.model = get_peft_model(self.model, config)
        self.lora = spec
        return spec

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The projector's and the head's weights and any LM weights left trainable (LoRA
        adapters)."""
        lm = [p for p in self.model.parameters() if p.requires_grad]
        return [*self.projector.parameters(), *self.head.parameters(), *lm]

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """The trainable parameters for an optimizer: the head's affinity scales at a
        higher learning rate, everything else at `lr`."""
        scales = self.head.affinity
        rest = [p for p in self.trainable_parameters() if p is not scales]
        return [{"params": rest, "lr": lr}, {"params": [scales], "lr": lr * AFFINITY_LR_SCALE}]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trainable weights by name: `projector.*`, `head.*` and `lm.*`."""
        state = {f"projector.{k}": v for k, v in self.projector.state_dict().items()}
        state |= {f"head.{k}": v for k, v in self.head.state_dict().items()}
        trainable = {name for name, p in self.model.named_parameters() if p.requires_grad}
        lm = self.model.state_dict()
        state |= {f"lm.{name}": lm[name] for name in trainable}
        return {name: tensor.detach().contiguous() for name, tensor in state.items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        for prefix, module in (("projector.", self.projector), ("head.", self.head)):
            weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if prefix == "head." and weights:
                weights = self.head.upgraded_state(weights)
            if weights:
                module.load_state_dict(weights)
        lm = {k[3:]: v for k, v in state.items() if k.startswith("lm.")}
        if lm:
            missing = set(lm) - set(self.model.state_dict())
            if missing:
                raise ValueError(
                    f"the checkpoint has LM weights this LM lacks: {sorted(missing)[:3]}"
                )
            self.model.load_state_dict(lm, strict=False)

    def train(self) -> None:
        """Training mode for what learns; the frozen LM keeps its dropout off."""
        self.projector.train()
        self.head.train()

    def eval(self) -> None:
        self.projector.eval()
        self.head.eval()

    @property
    def item_placeholder(self) -> str:
        """The text that stands for one item in a prompt: k placeholder tokens."""
        return ITEM_TOKEN * self.projector.config.tokens

    def chat_ids(self, messages: Sequence[dict[str, str]], *, reply: bool = True) -> torch.Tensor:
        """(1, T) token ids of a chat, in the model's chat template; `reply` adds the
        assistant turn's opening so generation answers."""
        encoded = self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=reply, return_tensors="pt", return_dict=True
        )
        ids: torch.Tensor = encoded["input_ids"]
        return ids

    def embed(self, input_ids: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, T, H) input embeddings: text embeddings, with the projected tokens of
        `items` (n, embed_dim), in order, written over the placeholders (n * k of them)."""
        embeds: torch.Tensor = self.model.get_input_embeddings()(input_ids)  # (B, T, H)
        mask = input_ids == self.item_token_id  # (B, T)
        k = self.projector.config.tokens
        if int(mask.sum()) != len(items) * k:
            raise ValueError(
                f"the prompt has {int(mask.sum())} item placeholder tokens; {len(items)} items "
                f"need {len(items) * k} ({k} each)"
            )
        if len(items) == 0:
            return embeds
        tokens = self.projector(items).to(embeds.dtype).reshape(-1, embeds.shape[-1])
        return embeds.masked_scatter(mask[..., None], tokens)

    def forward(
        self,
        input_ids: torch.Tensor,
        items: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        hidden_states: bool = False,
        logits_to_keep: int = 0,
    ) -> Any:
        """The LM's output (logits, loss when labels are given, every layer's hidden states
        when asked); `logits_to_keep` > 0 computes logits at that many last positions only."""
        return self.model(
            inputs_embeds=self.embed(input_ids, items),
            attention_mask=attention_mask,
            labels=labels,
            output_hidden_states=hidden_states,
            logits_to_keep=logits_to_keep,
        )

    def generate(
        self,
        input_ids: torch.Tensor,
        items: torch.Tensor,
        max_new_tokens: int = 48,
        allowed: AllowedTokens | None = None,
    ) -> str:
        """Greedy continuation of one prompt (1, T), as text."""
        return "".join(self.stream(input_ids, items, max_new_tokens, allowed))

    def stream(
        self,
        input_ids: torch.Tensor,
        items: torch.Tensor,
        max_new_tokens: int = 48,
        allowed: AllowedTokens | None = None,
    ) -> Iterator[str]:
        """Greedy continuation of one prompt (1, T), as pieces of text while they decode;
        `allowed(generated ids)` gives the ids the next token may take."""
        with torch.inference_mode():
            embeds = self.embed(input_ids, items)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=STREAM_TIMEOUT
        )
        arguments = {
            "inputs_embeds": embeds,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "suppress_tokens": [self.item_token_id],
            "pad_token_id": self.tokenizer.eos_token_id,
            "streamer": streamer,
        }
        if allowed is not None:
            arguments["prefix_allowed_tokens_fn"] = lambda _, ids: allowed(ids.tolist())
        worker = threading.Thread(target=self._generate, kwargs=arguments, daemon=True)
        worker.start()
        yield from (piece for piece in streamer if piece)
        worker.join()

    @torch.inference_mode()
    def _generate(self, **arguments: Any) -> None:
        self.model.generate(**arguments)


def load_item_lm(workdir: Path) -> ItemLM:
    """The workdir's current projector on the LM it was trained for, with the choice head
    and LoRA adapters trained with it (stage 2)."""
    from safetensors.torch import load_file

    from tastegraph.assistant.projector import ADAPTERS_FILE, load_projector

    projector, manifest = load_projector(workdir)
    lm = ItemLM.load(cached_lm(workdir, manifest.get("lm", DEFAULT_LM)), projector)
    if manifest.get("lora"):
        lm.add_lora(manifest["lora"]["rank"], manifest["lora"]["alpha"])
    adapters = Path(manifest["path"]) / ADAPTERS_FILE
    if adapters.is_file():
        lm.load_trainable_state(load_file(str(adapters)))
        lm.head_trained = True
    elif manifest.get("lora"):
        raise FileNotFoundError(
            f"{adapters} is missing (an older version trained this projector); "
            "run `tastegraph train assistant --stage shopping` again"
        )
    lm.model.eval()
    lm.eval()
    return lm
