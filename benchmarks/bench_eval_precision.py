"""Agreement of bf16-autocast evaluation with fp32, per study, on one model (the eval.precision table of docs/performance.md).

    python benchmarks/bench_eval_precision.py [stereo] [adult] [compas] [lending]   (default: stereo)

Each study is evaluated twice on the embedded SmolLM2 base model, inside lorafair.lm.precision.use with
fp32 and with bf16 for every operation; it prints both times, the share of per-item decisions that agree
and the aggregate metrics of both.
"""
import sys, time, numpy as np, tempfile
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests"))
from helpers_lf import eval_context
from lorafair.models.sources import load_model
from lorafair.lm import precision as P
model, tok = load_model("embedded:smollm2-135m-instruct"); model.eval()
def run(study, cfg, prec):
    from lorafair.studies.base import STUDIES
    st = STUDIES.get(study)()
    with tempfile.TemporaryDirectory() as d:
        ctx = eval_context(study, out_dir=d, model=model, tokenizer=tok, study_config=cfg)
        t = time.perf_counter()
        with P.use({"score": prec, "sample": prec}):
            r = st.evaluate(ctx)
        return time.perf_counter() - t, r
which = sys.argv[1:] or ["stereo"]
cases = {
 "stereo": ("stereotypes", {"benchmarks": ["crows", "stereoset", "winobias", "bbq"], "split": "eval",
            "limit": {"crows": 300, "stereoset": 150, "winobias": 200, "bbq": 300}}),
 "adult": ("classification", {"dataset": "adult", "protected": "sex", "include_protected": True, "n_eval": 300, "threshold": 0.0}),
 "compas": ("classification", {"dataset": "compas", "n_eval": 300, "threshold": 0.0}),
 "lending": ("decisions", {}),
}
for key in which:
    study, cfg = cases[key]
    t32, r32 = run(study, cfg, "fp32"); t16, r16 = run(study, cfg, "bf16")
    print(f"== {key}: fp32 {t32:.1f}s  bf16 {t16:.1f}s  speed-up {t32/t16:.2f}x")
    for unit, s32 in r32.items.items():
        s16 = r16.items[unit]
        for col in s32.columns:
            a, b = np.asarray(s32.columns[col]), np.asarray(s16.columns[col])
            if a.dtype.kind in "fb" and a.shape == b.shape and a.size:
                a = a.astype(float); b = b.astype(float)
                binary = set(np.unique(a[~np.isnan(a)])) <= {0.0, 1.0}
                if binary:
                    print(f"   {unit}.{col}: agree {100*np.mean((a == b) | (np.isnan(a) & np.isnan(b))):.2f}% of {a.size}")
                else:
                    d = np.abs(a - b); print(f"   {unit}.{col}: |diff| median {np.nanmedian(d):.4f} max {np.nanmax(d):.4f}")
    m32 = {(m.metric, m.group): m.value for m in r32.metrics}; m16 = {(m.metric, m.group): m.value for m in r16.metrics}
    for k in m32:
        if k[1] == "" and k in m16: print(f"   metric {k[0]}: fp32 {m32[k]:.4f} bf16 {m16[k]:.4f}")
