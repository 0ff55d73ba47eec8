#!/usr/bin/env bash
# Real time on one GPU, in one go (about 10 minutes on an H200): the GPU tests of the streaming step (CUDA graphs
# equal to eager, cache equal to full sequence), then `bench` at the three shapes docs/performance.md's GPU table lists.
#   bash experiments/gpu/realtime.sh [OUT_DIR]      (default runs/gpu; JSON per shape, Markdown on stdout)
set -euo pipefail
out=${1:-runs/gpu}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -m pytest -q -m gpu tests/unit/test_streaming.py tests/unit/test_cache_equivalence.py tests/unit/test_attention.py
# the bench preset (110M, 256 tokens per frame), window 30 + 1 sink: every method, 1/4/16 streams
python -m lightning_aapt bench streaming --preset bench --latent_size '[32,32]' --frames 300 --rounds 30 \
  --out "$out/bench.json"
# Wan2.1-1.3B's shape at 832x480 (latents 60x104: 1560 tokens per latent frame of 4 video frames), causal
python -m lightning_aapt bench streaming --preset wan-1.3b-like --latent_size '[60,104]' --frames 100 --rounds 20 \
  --batches '[1,4]' --methods '[aapt,aapt_graph,no_cache,aapt_batch]' --out "$out/wan.json"
python -m lightning_aapt bench efficiency --preset wan-1.3b-like --latent_size '[60,104]' --out "$out/wan_mfu.json"
# AAPT's own setting: the 8B-like model at 736x416 (latents 52x92), 1 NFE, batch 1
python -m lightning_aapt bench streaming --preset aapt-8b-like --latent_size '[52,92]' --frames 60 --rounds 10 \
  --batches '[1]' --methods '[aapt,aapt_graph,no_cache]' --out "$out/aapt8b.json"
