"""Training throughput against HF Trainer + PEFT, in one run on the same records, batch and steps.

    python benchmarks/bench_train_vs_hf.py [--model embedded:smollm2-135m-instruct] [--steps 10]
        [--batch-size 8] [--max-length 128] [--records 400] [--methods lora full] [--hf-bf16 auto|on|off]
        [--completion-only FRACTION]

For LoRA r16 and full fine-tuning it trains with
  (a) lorafair's ``train_variant`` as the runner calls it (the recipe defaults of ``TrainConfig``: length-grouped
      batches, loss at supervised positions only, fused AdamW, precision auto),
  (a0) with --with-exact: lorafair's exact-reproduction settings (precision fp32, the old batch order, full logits),
  (b) HF ``Trainer`` + PEFT with defaults (``use_cpu`` on a CPU),
  (c) HF ``Trainer`` + PEFT with its best flags: group_by_length (``train_sampling_strategy`` in transformers 5) and ``bf16=True`` where bf16 is
      native (``--hf-bf16 auto``: AVX512-BF16/AMX on a CPU, or a bf16 GPU; without them bf16 on a CPU is
      emulated and tens of times slower, so it is not a "best" flag there; ``on`` forces it),
and prints real (non-padding) tokens/s of each, timed over the training loop only (model set-up excluded
in both), and the ratio lorafair / HF-best. After an untimed warm-up of both, each runner runs ``--repeats``
times in alternating order and its best run is kept (the least disturbed by other work on the machine). The records are BOLD Wikipedia sentences (``bold-wiki``: real
variable-length texts, truncated to ``--max-length`` tokens); with ``--completion-only`` each sentence's last
words are a completion and the rest its prompt, the records a completion-only fine-tune trains on (both
runners are given the same labels: -100 on the prompt). Tokens/s counts every real token, prompt included.
This machine is noisy: compare the ratios of
one run, not absolute numbers across runs.

On a CPU, lorafair's training keeps freed buffers in the heap (``lorafair.lm.heap``) and, on leaving, sets glibc's
malloc to the state its dynamic mmap threshold converges to (32 MB); HF runs later in the same process inherit that
state, which is at least as good for them as a fresh process's. ``--separate-processes`` times each runner in a
fresh process of its own instead (``--runners`` picks them), one after the other.
"""

from __future__ import annotations

import argparse
import time

import torch

from lorafair.adapt.peft_methods import peft_config
from lorafair.adapt.tokenize import collate, encode_records
from lorafair.adapt.train import mixed_precision, train_variant
from lorafair.adapt.variants import Variant
from lorafair.config.schema import TrainConfig
from lorafair.data.load import load_records
from lorafair.data.registry import DataContext, DataSpec
from lorafair.models.sources import load_model

LR = {"lora": 1e-3, "full": 5e-5}


def lorafair_run(model, tok, method, enc, tcfg, rank):
    v = Variant("full", "full", lrs=(LR["full"],)) if method == "full" else \
        Variant(f"lora-r{rank}", "lora", rank, (LR["lora"],), 2.0 * rank)
    _, r = train_variant(model, tok, v, enc, [], tcfg, 0, next(model.parameters()).device, progress=False)
    return r.tokens_per_s, r.tokens, r.precision, r.history[-1]["loss"]


def hf_run(model, tok, method, enc, tcfg, rank, *, best: bool, bf16: bool, tmp: str):
    import copy

    from transformers import Trainer, TrainerCallback, TrainingArguments

    torch.manual_seed(0)
    m = copy.deepcopy(model)
    if method == "full":
        m.requires_grad_(True)
    else:
        from peft import get_peft_model

        m = get_peft_model(m, peft_config("lora", rank, 2.0 * rank, 0.0, "all-linear"))
    counted = {"tokens": 0}

    def count(_module, _args, kwargs):  # the batches the training steps consume (not the loader's prefetch)
        if _module.training and kwargs.get("attention_mask") is not None:
            counted["tokens"] += int(kwargs["attention_mask"].sum())

    m.register_forward_pre_hook(count, with_kwargs=True)

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            counted["tokens"] = 0
            self.t0 = time.perf_counter()

        def on_train_end(self, *a, **k):
            self.wall = time.perf_counter() - self.t0

    clock = Clock()
    args = TrainingArguments(
        output_dir=tmp, max_steps=tcfg.max_steps, per_device_train_batch_size=tcfg.batch_size,
        learning_rate=LR[method], warmup_steps=int(round(tcfg.warmup_ratio * tcfg.max_steps)), lr_scheduler_type=tcfg.schedule,
        weight_decay=tcfg.weight_decay, max_grad_norm=tcfg.grad_clip or 0.0, seed=0, report_to="none",
        save_strategy="no", logging_steps=10_000, disable_tqdm=True, dataloader_num_workers=0,
        use_cpu=next(model.parameters()).device.type == "cpu", remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if best else "random", bf16=best and bf16)
    tr = Trainer(model=m, args=args, train_dataset=enc, data_collator=lambda b: collate(b, tok.pad_token_id), callbacks=[clock])
    out = tr.train()
    return counted["tokens"] / clock.wall, counted["tokens"], "bf16" if best and bf16 else "fp32", out.training_loss


RUNNERS = ["lorafair", "lorafair-exact", "hf-default", "hf-best"]


def separate_processes(args) -> None:
    """Each runner in its own process (this script, ``--runners NAME``), then the combined table."""
    import json
    import subprocess
    import sys

    argv = [a for a in sys.argv[1:] if a != "--separate-processes"]
    if "--runners" in argv:  # drop the list given to the parent
        i = argv.index("--runners")
        j = i + 1
        while j < len(argv) and not argv[j].startswith("--"):
            j += 1
        del argv[i:j]
    best: dict[tuple[str, str], float] = {}
    for name in args.runners:
        if name == "lorafair-exact" and not args.with_exact:
            continue
        out = subprocess.run([sys.executable, __file__, *argv, "--runners", name], check=True, capture_output=True,
                             text=True).stdout
        print(out, flush=True)
        for line in out.splitlines():
            if line.startswith("RESULT "):
                r = json.loads(line[7:])
                best[r["method"], r["runner"]] = (r["tokens_per_s"], r["mfu"], r["peak_mb"])
    print(f"\nseparate processes\n{'method':<6} {'runner':<15} {'tok/s':>9} {'/ HF-best':>9} {'MFU':>7} {'peak MB':>9}")
    for method in args.methods:
        ref = best.get((method, "hf-best"), (float("nan"),))[0]
        for name in args.runners:
            if (method, name) in best:
                tps, util, peak_mb = best[method, name]
                print(f"{method:<6} {name:<15} {tps:>9.1f} {tps / ref:>9.2f} {util:>7.1%} {peak_mb:>9.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--records", type=int, default=400, help="records to draw batches from (>= steps x batch)")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--methods", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    ap.add_argument("--hf-bf16", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--with-exact", action="store_true", help="also lorafair's exact-reproduction settings (a0)")
    ap.add_argument("--completion-only", type=float, default=0.0, metavar="FRACTION",
                    help="train on prompt/completion records: the last FRACTION of each sentence's words is the "
                         "completion (the loss), the rest the prompt (e.g. 0.25); 0: whole texts")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each runner, in alternating order; the best is kept")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the device's peak for MFU, TFLOP/s (default: a GPU's data sheet by name, or a matrix "
                         "product measured on this CPU in the training's precision)")
    ap.add_argument("--runners", nargs="+", default=RUNNERS, choices=RUNNERS,
                    help="which runners to time (lorafair-exact needs --with-exact)")
    ap.add_argument("--separate-processes", action="store_true",
                    help="time each runner in a fresh process of its own (this script with --runners NAME), one after "
                         "the other: lorafair's CPU training changes the process's glibc malloc settings "
                         "(lorafair.lm.heap), which HF runs later in the same process would inherit")
    args = ap.parse_args()
    if args.separate_processes:
        return separate_processes(args)
    import tempfile

    model, tok = load_model(args.model, device=args.device)
    model.requires_grad_(False)
    device = next(model.parameters()).device
    rows = load_records(DataSpec(source="bold-wiki", limit=args.records), DataContext())
    if args.completion_only:  # the first words are the prompt (no loss), the rest the completion
        def split(text: str) -> dict:
            words = text.split()
            cut = max(1, int(round(len(words) * (1 - args.completion_only))))
            return {"prompt": " ".join(words[:cut]), "completion": " " + " ".join(words[cut:])}
        rows = [split(r["text"]) for r in rows if len(r["text"].split()) > 1]
    enc = encode_records(rows, tok, args.max_length)
    lens = sorted(len(e["input_ids"]) for e in enc)
    tcfg = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
                       checkpoint_every=None)
    old = tcfg.model_copy(update={"precision": "fp32", "group_by_length": False, "loss_positions": "all"})
    native = mixed_precision(tcfg.model_copy(update={"precision": "auto"}), device) == "bf16"  # lorafair's own rule
    hf_bf16 = {"auto": native, "on": True, "off": False}[args.hf_bf16]
    print(f"model {args.model} on {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}, native bf16 {native}; lorafair precision "
          f"auto -> {mixed_precision(tcfg, device)}; HF best bf16={hf_bf16}")
    print(f"{len(enc)} records, tokens min/median/max {lens[0]}/{lens[len(lens) // 2]}/{lens[-1]}; "
          f"{args.steps} steps x batch {args.batch_size}, max_length {args.max_length}")
    from lorafair.run.info import PhaseMeter
    from mfu import flops_per_token, lora_weights, mfu, peak_flops

    peaks = {prec: peak_flops(device, prec, args.peak_tflops) for prec in ("bf16", "fp32")}
    for prec, (p, src) in peaks.items():
        print(f"peak for MFU, {prec}: {p / 1e12:.2f} TFLOP/s ({src})")
    meter = PhaseMeter(device)
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up, untimed: the first training of a process pays one-time costs (kernel set-up, allocations)
        warm = tcfg.model_copy(update={"max_steps": 2})
        if any(r.startswith("lorafair") for r in args.runners):
            lorafair_run(model, tok, "lora", enc, warm, args.rank)
        if any(r.startswith("hf") for r in args.runners):
            hf_run(model, tok, "lora", enc, warm, args.rank, best=True, bf16=hf_bf16, tmp=tmp)
        for method in args.methods:
            runs = [("lorafair", lambda: lorafair_run(model, tok, method, enc, tcfg, args.rank))]
            if args.with_exact:
                runs.append(("lorafair-exact", lambda: lorafair_run(model, tok, method, enc, old, args.rank)))
            runs += [("hf-default", lambda: hf_run(model, tok, method, enc, tcfg, args.rank, best=False, bf16=False, tmp=tmp)),
                     ("hf-best", lambda: hf_run(model, tok, method, enc, tcfg, args.rank, best=True, bf16=hf_bf16, tmp=tmp))]
            runs = [(name, fn) for name, fn in runs if name in args.runners]
            res = {}
            adapter = lora_weights(model, args.rank) if method == "lora" else 0
            for rep in range(args.repeats):  # alternating order; the best of the repeats per runner
                for name, fn in (runs if rep % 2 == 0 else runs[::-1]):
                    with meter.phase(f"{method}/{name}/{rep}"):
                        got = fn()
                    tps, n, prec, loss = got
                    mem = meter.phases[f"{method}/{name}/{rep}"]
                    peak_mb = mem.get("peak_gpu_allocated_mb", mem.get("peak_rss_mb", float("nan")))
                    seq = n / (args.steps * args.batch_size)  # mean real tokens per sequence
                    util = mfu(tps, flops_per_token(model, method, seq, adapter_weights=adapter), peaks[prec][0])
                    print(f"  {method:<5} {name:<15} {tps:>9.1f} real tok/s  ({n} tokens, {prec}, loss {loss:.3f}, "
                          f"MFU {util:.1%}, peak memory {peak_mb:.0f} MB)", flush=True)
                    got = (*got, util, peak_mb)
                    if name not in res or got[0] > res[name][0]:
                        res[name] = got
            rows_out.append((method, res))
    import json

    mem_kind = "GPU allocated" if device.type == "cuda" else "process RSS"
    print(f"\n{'method':<6} {'runner':<15} {'tok/s':>9} {'/ HF-best':>9} {'MFU':>7} {'peak MB':>9}  (MFU of the best run; "
          f"peak memory: {mem_kind} during it)")
    for method, res in rows_out:
        best = res["hf-best"][0] if "hf-best" in res else float("nan")
        for name, (tps, _n, _prec, _loss, util, peak_mb) in res.items():
            print(f"{method:<6} {name:<15} {tps:>9.1f} {tps / best:>9.2f} {util:>7.1%} {peak_mb:>9.0f}")
    for method, res in rows_out:  # for --separate-processes
        for name, (tps, _n, _prec, _loss, util, peak_mb) in res.items():
            print("RESULT " + json.dumps({"method": method, "runner": name, "tokens_per_s": tps, "mfu": util,
                                          "peak_mb": peak_mb}))


if __name__ == "__main__":
    main()
