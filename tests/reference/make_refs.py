#!/usr/bin/python3
"""Write the reference files the engine tests compare against, for one checkpoint family:

    /usr/bin/python3 make_refs.py --hf HF_DIR --out-dir DIR [--max-new-tokens 32] [--seed 0]

For every case of make_inputs.py it writes DIR/<case>.in.h5 and DIR/<case>.out.h5 (names and
shapes of docs/forward-io.md). One process loads the model once for all cases (the same as
running make_inputs.py then internvl_ref.py per case).
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import internvl_ref as ref  # noqa: E402
import make_inputs  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hf", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default=None,
                    help="comma list (default: every case applicable to the checkpoint)")
    a = ap.parse_args(argv)
    try:
        os.makedirs(a.out_dir, exist_ok=True)
        model = ref.InternVL(a.hf)
        cases = a.cases.split(",") if a.cases else make_inputs.applicable_cases(a.hf)
        for case in cases:
            t0 = time.time()
            inp = os.path.join(a.out_dir, f"{case}.in.h5")
            make_inputs.write(inp, make_inputs.build(a.hf, case, a.seed))
            ids, mask, px = ref.read_inputs(inp)
            out = model.run(ids, mask, px, a.max_new_tokens)
            ref.write_outputs(os.path.join(a.out_dir, f"{case}.out.h5"), out, a.max_new_tokens, model.stop_id)
            gen = out["generated_ids"]
            print(f"make_refs: {case}: {ids.numel()} ids, {0 if px is None else px.shape[0]} tiles, "
                  f"generated {[int((r >= 0).sum()) for r in gen]} tokens, {time.time() - t0:.1f} s")
    except ref.RefError as e:
        print(f"make_refs: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
