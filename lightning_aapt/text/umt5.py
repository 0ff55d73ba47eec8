"""`UMT5TextEncoder`: Wan's text encoder (umT5) behind `TextEncoder`, from local weights (the `[wan]` extra).

Notation: B prompts, L = max_tokens (Wan: 512), Dt = the encoder's width (umT5-XXL: 4096).

As Wan's pipelines do: the prompt is cleaned (ftfy, HTML entities, whitespace), tokenised to L tokens with the end
token, encoded by `UMT5EncoderModel` under its attention mask, and every row past the prompt's length set to zero:
Wan's transformers were trained attending to exactly those zero rows. Shards store the rows up to the length
(`trim`), and batches pad them back with zeros to L.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import torch
from torch import Tensor


def clean_prompt(text: str) -> str:
    """Wan's prompt cleaning: repair mojibake (ftfy), unescape HTML twice, collapse whitespace."""
    import ftfy

    return re.sub(r"\s+", " ", html.unescape(html.unescape(ftfy.fix_text(text))).strip()).strip()


class UMT5TextEncoder:
    """umT5 from a local path (see the module docstring).

    Args:
        path: a diffusers Wan pipeline folder (text_encoder/ and tokenizer/), or a transformers
            `UMT5EncoderModel` folder (then `tokenizer` names the tokenizer's folder, unless it sits beside it).
        tokenizer: the tokenizer's folder (default: path/tokenizer, or path itself).
        max_tokens: L, Wan's 512.
        dtype, device: where the encoder runs (umT5-XXL is ~5.7B parameters: bfloat16, once per caption).
    """

    def __init__(self, path: str | Path, tokenizer: str | Path | None = None, max_tokens: int = 512,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> None:
        from transformers import AutoTokenizer, UMT5EncoderModel

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such umT5 text encoder (a Wan pipeline folder or a "
                                    "UMT5EncoderModel folder)")
        model_dir = path / "text_encoder" if (path / "text_encoder").is_dir() else path
        tokenizer_dir = Path(tokenizer) if tokenizer else path / "tokenizer" if (path / "tokenizer").is_dir() else path
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        self.model = UMT5EncoderModel.from_pretrained(model_dir, torch_dtype=dtype, local_files_only=True)
        self.model = self.model.to(device).eval().requires_grad_(False)
        self.dim, self.max_tokens = int(self.model.config.d_model), max_tokens
        self.name = f"umt5-{self.dim}x{max_tokens}"

    @torch.no_grad()
    def encode(self, texts: list[str]) -> Tensor:
        """(B, L, Dt) float32, zero rows after each prompt's tokens."""
        tokens = self.tokenizer([clean_prompt(t) for t in texts], padding="max_length", max_length=self.max_tokens,
                                truncation=True, add_special_tokens=True, return_attention_mask=True,
                                return_tensors="pt")
        device = next(self.model.parameters()).device
        mask = tokens.attention_mask.to(device)  # (B, L)
        hidden = self.model(tokens.input_ids.to(device), attention_mask=mask).last_hidden_state  # (B, L, Dt)
        return (hidden.float() * mask[..., None]).cpu()

