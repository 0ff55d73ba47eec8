"""Tiny random Wan components saved the way the published ones are, offline: a transformer, a VAE, umT5 and its
tokenizer, laid out as a diffusers Wan pipeline folder."""

from __future__ import annotations

from pathlib import Path

import torch

CAPTION_WORDS = "a red ball rolls left right up down the green square moves slowly fast over grass sky blue cat dog"
WORDS = CAPTION_WORDS.split()
TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=24, in_channels=4, out_channels=4,
                   text_dim=32, freq_dim=32, ffn_dim=96, num_layers=2, cross_attn_norm=True,
                   qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
VAE = dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
           temperal_downsample=[False, True, True], latents_mean=[0.1, -0.2, 0.3, 0.0],
           latents_std=[1.5, 0.5, 2.0, 1.0])
VAE22 = dict(VAE, is_residual=True, in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16)


def save_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(f"▁{w}", -1.0) for w in WORDS]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=2))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)


def save_umt5(folder: Path, seed: int = 0) -> None:
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    config = UMT5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=32, feed_forward_proj="gated-gelu", is_encoder_decoder=False)
    UMT5EncoderModel(config).save_pretrained(folder)


def save_vae(folder: Path, seed: int = 0, wan22: bool = False) -> None:
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    AutoencoderKLWan(**(VAE22 if wan22 else VAE)).save_pretrained(folder)


def save_transformer(folder: Path, seed: int = 0) -> None:
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    model = WanTransformer3DModel(**TRANSFORMER)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.3 * torch.randn_like(p) if "norm" in name and name.endswith("weight")
                    else 0.9 * torch.randn_like(p) / p.shape[-1] ** 0.5)
    model.save_pretrained(folder)


def save_pipeline(root: Path) -> Path:
    """A diffusers-style Wan pipeline folder: transformer/, vae/, text_encoder/, tokenizer/."""
    save_transformer(root / "transformer")
    save_vae(root / "vae")
    save_umt5(root / "text_encoder")
    save_tokenizer(root / "tokenizer")
    return root
