"""`python -m lightning_aapt sweep`: a grid (or list) of config overrides as trials, run here or on SLURM.

    sweep --config X.yaml --grid "model.init_args.optimizer.lr=[1e-4,3e-4]" --grid "data.init_args.batch_size=[4,8]"
          [--trial "model.init_args.ema_decay=0.99 data.init_args.num_frames=6"] --out runs/sweeps/NAME
          [--local true | --submit true] [--nodes 1 --gpus 8 --time 24:00:00 --partition P --account A]
          [-- LightningCLI arguments for every trial]

Each trial is one run directory `OUT/trial_NNN` (its TensorBoard logs, checkpoints and SLURM requeue checkpoints
live there; `OUT/trials.json` lists every trial's overrides). `--local true` runs the trials one after another in
this machine's Python. Otherwise an sbatch job-array script `OUT/sweep.sbatch` is written (one array task per
trial; `srun` launches one process per GPU, which Lightning's `SLURMEnvironment` picks up) and `--submit true` hands
it to `sbatch`. Preemption: SLURM sends SIGUSR1 90 s before the time limit (`--signal=USR1@90`); Lightning's
`SLURMEnvironment` saves `hpc_ckpt_*.ckpt` in the trial directory and requeues the task (`--requeue`), which
resumes from it, exactly (see the data module's resume notes).
`sweep summary --dir OUT` collects each trial's last logged metrics into `OUT/summary.md` and `OUT/summary.csv`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import yaml

from lightning_aapt.cli.signature import run_function
from lightning_aapt.errors import ConfigError, check_at_least
from lightning_aapt.files import write_atomic
from lightning_aapt.run_lock import RunLock
from lightning_aapt.tables import markdown_table


def number(value):
    """YAML 1.1 reads 1e-4 as a string; sweeps mean the number."""
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def parse_grid(specs: list[str]) -> list[tuple[str, list]]:
    """["key=[a,b]", ...] -> [(key, [a, b]), ...] (values parsed as YAML: numbers stay numbers)."""
    grid = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        try:
            parsed = yaml.safe_load(values) if sep else None
        except yaml.YAMLError as err:
            raise ConfigError(f"--grid {spec!r}: the values are not YAML ({str(err).splitlines()[0]}); expected "
                              "KEY=[v1,v2,...]") from None
        if not key or not isinstance(parsed, list) or not parsed:
            raise ConfigError(f"--grid {spec!r}: expected KEY=[v1,v2,...] (a YAML list)")
        grid.append((key.strip(), [number(v) for v in parsed]))
    return grid


def expand(grid: list[tuple[str, list]], trials: list[str]) -> list[dict]:
    """Trials: the grid's cartesian product, then each --trial "k=v k2=v2" as given."""
    out = [dict(zip([k for k, _ in grid], combo, strict=True)) for combo in itertools.product(*[v for _, v in grid])]
    out = out if grid else []
    for spec in trials:
        trial = {}
        for item in shlex.split(spec):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--trial {spec!r}: {item!r} is not KEY=VALUE")
            try:
                trial[key] = number(yaml.safe_load(value))
            except yaml.YAMLError as err:
                raise ConfigError(f"--trial {spec!r}: {value!r} is not YAML ({str(err).splitlines()[0]})") from None
        out.append(trial)
    if not out:
        raise ConfigError("sweep needs at least one --grid or --trial")
    return out


def trial_args(config: str, trial: dict, run_dir: Path, extra: list[str]) -> list[str]:
    """The `fit` arguments of one trial: its overrides, and every output under its own directory."""
    overrides = [f"--{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in trial.items()]
    return ["fit", "--config", config, *overrides, f"--trainer.default_root_dir={run_dir}",
            f"--trainer.logger.init_args.save_dir={run_dir.parent}", f"--trainer.logger.init_args.name={run_dir.name}",
            "--trainer.logger.init_args.version=", *extra]


def sbatch_script(name: str, out: Path, config: str, trials: list[dict], extra: list[str], nodes: int, gpus: int,
                  time: str, cpus_per_gpu: int, partition: str | None, account: str | None,
                  max_parallel: int | None) -> str:
    array = f"0-{len(trials) - 1}" + (f"%{max_parallel}" if max_parallel else "")
    # sbatch reads a directive's value as the shell would a word (quotes group whitespace): a name or an --out
    # with spaces stays one value
    lines = ["#!/bin/bash", f"#SBATCH --job-name={shlex.quote(name)}", f"#SBATCH --array={array}",
             f"#SBATCH --nodes={nodes}",
             f"#SBATCH --ntasks-per-node={gpus}", f"#SBATCH --gpus-per-node={gpus}",
             f"#SBATCH --cpus-per-task={cpus_per_gpu}", f"#SBATCH --time={time}",
             "#SBATCH --signal=USR1@90            # Lightning's SLURMEnvironment: checkpoint, then requeue",
             "#SBATCH --requeue", "#SBATCH --open-mode=append",
             f"#SBATCH --output={shlex.quote(f'{out}/slurm-%A_%a.out')}"]
    lines += [f"#SBATCH --partition={shlex.quote(partition)}"] if partition else []
    lines += [f"#SBATCH --account={shlex.quote(account)}"] if account else []
    lines += ["", "set -euo pipefail", f"cd {shlex.quote(str(Path.cwd()))}", "", "case $SLURM_ARRAY_TASK_ID in"]
    for i, trial in enumerate(trials):
        args = trial_args(config, trial, out / f"trial_{i:03d}", extra)
        args += [f"--trainer.num_nodes={nodes}", f"--trainer.devices={gpus}"]
        lines.append(f"  {i}) ARGS=({' '.join(shlex.quote(a) for a in args)}) ;;")
    lines += ["  *) echo \"no trial $SLURM_ARRAY_TASK_ID\" >&2; exit 1 ;;", "esac", "",
              "# one task per GPU; a requeued task resumes from its trial's hpc_ckpt_*.ckpt automatically",
              f"srun {shlex.quote(sys.executable)} -m lightning_aapt \"${{ARGS[@]}}\""]
    return "\n".join(lines) + "\n"


def sweep(config: Path, out: Path, grid: list[str] | None = None, trial: list[str] | None = None, local: bool = False,
          submit: bool = False, name: str | None = None, nodes: int = 1, gpus: int = 8, cpus_per_gpu: int = 8,
          time: str = "24:00:00", partition: str | None = None, account: str | None = None,
          max_parallel: int | None = None, overrides: list[str] | None = None) -> int:
    """Trials of config overrides, run here one after another or written as a SLURM job array. LightningCLI arguments
    after `--` go to every trial; `sweep summary --dir OUT` collects the trials' metrics.

    Args:
        config: the stage's experiment YAML every trial starts from.
        out: sweep directory (one trial_NNN run directory per trial).
        grid: KEY=[v1,v2] (repeat for a product), e.g. --grid "model.init_args.optimizer.lr=[1e-4,3e-4]".
        trial: "KEY=V KEY2=V2": one more trial (repeatable).
        local: run the trials here, one after another.
        submit: sbatch the written script.
        name: SLURM job name (default: the --out directory's name).
        nodes: nodes per trial.
        gpus: GPUs per node (one task each).
        cpus_per_gpu: CPUs per GPU.
        time: SLURM time limit.
        partition: SLURM partition.
        account: SLURM account.
        max_parallel: array tasks running at once.
        overrides: (after `--`) LightningCLI arguments added to every trial.
    """
    return run_sweep(config, out, grid or [], trial or [], local, submit, name, nodes, gpus, cpus_per_gpu, time,
                     partition, account, max_parallel, overrides or [])


def main(argv: list[str]) -> int:
    if argv and argv[0] == "summary":
        return run_function(sweep_summary, argv[1:], "sweep summary")
    return run_function(sweep, argv, "sweep")


def run_sweep(config: Path, out: Path, grid: list[str], trials_given: list[str], local: bool, submit: bool,
              name: str | None, nodes: int, gpus: int, cpus_per_gpu: int, time: str, partition: str | None,
              account: str | None, max_parallel: int | None, extra: list[str],
              train: Callable[[list[str]], int] | None = None) -> int:
    """`sweep`; `train(args)` runs one trial's LightningCLI command (default: this package's `fit`)."""
    if not Path(config).is_file():
        raise ConfigError(f"--config {config}: no such file")
    check_at_least(("--nodes", nodes, 1), ("--gpus", gpus, 1), ("--cpus_per_gpu", cpus_per_gpu, 1),
                   ("--max_parallel", max_parallel, 1))
    trials = expand(parse_grid(grid), trials_given)
    out = Path(out).resolve()
    spec = {"config": str(config), "extra": extra, "trials": [
        {"name": f"trial_{i:03d}", "overrides": t} for i, t in enumerate(trials)]}
    earlier = out / "trials.json"
    if earlier.is_file() and json.loads(earlier.read_text()) != spec:
        raise ConfigError(f"--out={out} holds another sweep ({earlier} lists other trials or settings): its trials "
                          "would be replaced; name another --out (the same command reruns the same sweep)")
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out, f"--out={out}") if local else nullcontext():
        write_atomic(earlier, json.dumps(spec, indent=2).encode())
        if local:
            if train is None:
                from lightning_aapt.cli.lightning import lightning_cli as train
            for i, trial in enumerate(trials):
                print(f"[sweep] trial_{i:03d}: {trial}", flush=True)
                code = train(trial_args(str(config), trial, out / f"trial_{i:03d}", extra))
                if code:
                    return code
            print(summary(out))
            return 0
    script = out / "sweep.sbatch"
    write_atomic(script, sbatch_script(name or out.name, out, str(config), trials, extra, nodes, gpus, time,
                                       cpus_per_gpu, partition, account, max_parallel).encode())
    print(f"wrote {script} ({len(trials)} trials, array 0-{len(trials) - 1})")
    if submit:
        return subprocess.run(["sbatch", str(script)], check=False).returncode
    return 0


def last_scalars(run_dir: Path) -> dict[str, float]:
    """The last value of every scalar a run logged to TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}


def summary(out: Path) -> str:
    """Collect every trial's final metrics into `summary.md` and `summary.csv`; returns the Markdown."""
    spec = json.loads((out / "trials.json").read_text())
    rows = []
    for trial in spec["trials"]:
        run_dir = out / trial["name"]
        metrics = last_scalars(run_dir) if run_dir.is_dir() else {}
        rows.append({"trial": trial["name"], **{k: json.dumps(v) for k, v in trial["overrides"].items()},
                     **{k: f"{v:.6g}" for k, v in sorted(metrics.items()) if k.startswith(("val/", "train/loss"))},
                     "status": "done" if metrics else "missing"})
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "summary.csv", buffer.getvalue().encode())
    table = markdown_table(columns, ([row.get(c, "") for c in columns] for row in rows))
    text = f"# Sweep {out.name}: {spec['config']}\n\n" + "\n".join(table) + "\n"
    write_atomic(out / "summary.md", text.encode())
    return text


def sweep_summary(dir: Path) -> int:
    """Collect each trial's last logged metrics of a sweep directory into summary.md and summary.csv.

    Args:
        dir: a sweep directory (holds trials.json).
    """
    if not (dir / "trials.json").is_file():
        raise ConfigError(f"{dir}: no trials.json (not a sweep directory)")
    print(summary(dir))
    return 0
