"""Evaluation: generated vs real distances (FVD / Fréchet, kernel), long-horizon drift, toy-world streams against
the re-rendered truth, and their pictures. The callbacks decide when to run these; `eval` runs them on a
checkpoint; both call the same functions."""
