"""Peak memory spent on refusing hostile masker checkpoints (target: refused before 200 MB is allocated).

Each forged checkpoint (a copy of a real one with its header changed) is loaded in a fresh process against
the embedded classifier; the process's peak resident memory (ru_maxrss) after the classifier is loaded and after the
refusal are compared: what the refusal added to the peak. Prints a markdown table: case, refused (the one-line message), peak increase in MB.

    .venv/bin/python bench/hostile_checkpoints.py [--checkpoint checkpoints/fix_lite0.safetensors]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = {
    "a giant included classifier (timm:vit_huge_patch14_224)": dict(classifier_name="timm:vit_huge_patch14_224",
                                                                    classifier_included=True),
    "hidden_channels 1e7": dict(masker_config={"hidden_channels": 1e7}),
    "resolution_divisor 0": dict(masker_config={"resolution_divisor": 0}),
    "resolution_divisor -4": dict(masker_config={"resolution_divisor": -4}),
    "gumbel_temperature 'abc'": dict(masker_config={"gumbel_temperature": "abc"}),
    "masker_config a list": dict(masker_config=[1, 2, 3]),
    "no classifier_name": dict(classifier_name=None),
    "num_classes 1e9": dict(num_classes=10 ** 9),
    "stage 99": dict(masker_config={"stages": [99]}),
}

CHILD = r"""
import json, resource, sys
import torch
torch.set_num_threads(1)
from saliency_core.classifiers import load_classifier
from saliency_core.maskers.checkpoint import CheckpointError, load_masker
clf = load_classifier()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_masker(sys.argv[1], classifier=clf)
    message = "ACCEPTED"
except CheckpointError as exc:
    message = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"message": message, "peak_mb": (after - before) / 1024, "before_mb": before / 1024,
                  "after_mb": after / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "fix_lite0.safetensors"))
    args = parser.parse_args()
    from tests.test_reliability import forged

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, changes in CASES.items():
            path = forged(Path(args.checkpoint), Path(tmp) / "forged.safetensors", **changes)
            out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
            rows.append((name, json.loads(out.stdout.strip().splitlines()[-1])))
    print("| hostile checkpoint | refused with | peak RSS with the classifier loaded | after the refusal | added |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['message'].split(': ', 1)[-1][:90]} | {r['before_mb']:.0f} MB | {r['after_mb']:.0f} MB "
              f"| {r['peak_mb']:.1f} MB |")
    worst = max(r["peak_mb"] for _, r in rows)
    print(f"\nworst: {worst:.1f} MB (target < 200 MB); refused: {sum(r['message'] != 'ACCEPTED' for _, r in rows)}"
          f" of {len(rows)}")


if __name__ == "__main__":
    main()
