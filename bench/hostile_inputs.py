"""The project's own hostile list: bad files, options, outputs, checkpoints, training data and annotations, each
driven through the real entry points (``saliency explain | train | evaluate``, the checkpoint and box readers) with
the embedded classifier, and judged as a user would: the expected exit code, one clear line naming the problem,
no traceback, nothing lost. Prints one row per case and ``N of M ok``; exits 1 when a case is not ok.

    .venv/bin/python bench/hostile_inputs.py [--only WORD] [--json out.json]

Takes about 3 minutes on the 2-core CPU (the race cases start real processes). The unit tests hold the same cases
in depth (e.g. 20 race trials); this list is the quick, whole-product rerun issue 27 asks for.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIPPED = ROOT / "checkpoints" / "fix_lite0.safetensors"
TINY_TRAIN = ["--classifier", "timm:test_efficientnet", "--classifier-random-init", "--num-classes", "10",
              "--image-size", "32", "--batch-size", "4", "--epochs", "1", "--threads", "1", "--no-resume"]


@dataclass
class Ran:
    """What one command did: its exit code and what it printed."""

    rc: int
    out: str
    err: str

    @property
    def said(self) -> str:
        return self.out + self.err


def cli(*argv: str) -> Ran:
    """``saliency ARGV`` in this process; an exception that escapes is a traceback (rc -1)."""
    from saliency_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse refusals
            rc = int(exc.code or 0)
        except Exception:  # noqa: BLE001 - a traceback is what this bench looks for
            err.write(traceback.format_exc())
            rc = -1
    return Ran(rc, out.getvalue(), err.getvalue())


def one_line_refusal(ran: Ran, *words: str, rc: int | tuple[int, ...] = (1, 2)) -> tuple[bool, str]:
    """Refused with the expected exit code, no traceback, and a line that holds every one of ``words``."""
    codes = (rc,) if isinstance(rc, int) else rc
    lines = [line for line in ran.said.splitlines() if all(w in line for w in words)]
    ok = ran.rc in codes and "Traceback" not in ran.said and bool(lines)
    return ok, (lines[0] if lines else ran.said.strip().splitlines()[-1] if ran.said.strip() else f"rc {ran.rc}")


def accepted(ran: Ran, out: Path) -> tuple[bool, str]:
    results = list(out.rglob("result.json"))
    ok = ran.rc == 0 and "Traceback" not in ran.said and len(results) == 1
    return ok, ran.out.strip().splitlines()[-1] if ran.out.strip() else ran.said.strip()[-200:]


# --------------------------------------------------------------------------- files


def _png(path: Path, img: Image.Image, **kw) -> Path:
    img.save(path, **kw)
    return path


def _photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated_jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    _photo().save(buf, format="JPEG", quality=90)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def bad_image_cases() -> dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]]:
    """Image files that must be refused: (maker, words of the one line)."""
    return {
        "empty file": (lambda d: _write(d / "empty.png", b""), ("empty.png", "empty")),
        "text named .jpg": (lambda d: _write(d / "notes.jpg", b"hello"), ("notes.jpg", "not a recognised image")),
        "truncated JPEG": (lambda d: _truncated_jpeg(d / "cut.jpg"), ("cut.jpg", "corrupt or truncated")),
        "20000x50 strip": (lambda d: _png(d / "strip.png", Image.new("RGB", (20000, 50), (9, 9, 9))),
                           ("strip.png", "too elongated", "10:1")),
        "5x5 image": (lambda d: _png(d / "tiny.png", Image.new("RGB", (5, 5))), ("tiny.png", "too small")),
        "81 MP decompression bomb": (lambda d: _png(d / "bomb.png", Image.new("1", (9000, 9000))),
                                     ("bomb.png", "too large")),
        "a folder named .jpg": (lambda d: (d / "dir.jpg").mkdir() or d / "dir.jpg", ("dir.jpg", "folder")),
        "a missing file": (lambda d: d / "missing.jpg", ("missing.jpg", "not found")),
    }


def odd_image_cases() -> dict[str, Callable[[Path], Path]]:
    """Image files that must be explained (converted, with a note)."""
    photo = _photo()

    def sixteen(d: Path) -> Path:
        arr = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
        return _png(d / "deep.png", Image.fromarray(arr))

    def gif(d: Path) -> Path:
        frames = [photo.convert("P"), photo.rotate(90).convert("P")]
        frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
        return d / "anim.gif"

    return {
        "CMYK JPEG": lambda d: _png(d / "cmyk.jpg", photo.convert("CMYK"), format="JPEG"),
        "16-bit grayscale PNG": sixteen,
        "RGBA with transparency": lambda d: _png(d / "alpha.png", photo.convert("RGBA").copy()),
        "animated GIF": gif,
        "grayscale JPEG": lambda d: _png(d / "gray.jpg", photo.convert("L"), format="JPEG"),
        "a name with markup": lambda d: _png(d / "<img src=x onerror=alert(1)>.png", photo),
    }


# --------------------------------------------------------------------------- cases


def cases(work: Path) -> dict[str, Callable[[], tuple[bool, str]]]:
    """Every case: a name and a check that returns (ok, what was seen)."""
    out: dict[str, Callable[[], tuple[bool, str]]] = {}
    files = work / "files"
    files.mkdir()
    good = _png(files / "good.png", _photo())

    for name, (make, words) in bad_image_cases().items():
        def run(make=make, words=words, name=name) -> tuple[bool, str]:
            path = make(files)
            return one_line_refusal(cli("explain", path, "--out", work / f"o-{abs(hash(name))}"), *words, rc=1)
        out[f"image: {name}"] = run
    for name, make in odd_image_cases().items():
        def run(make=make, name=name) -> tuple[bool, str]:
            dest = work / f"o-{abs(hash(name))}"
            return accepted(cli("explain", make(files), "--out", dest), dest)
        out[f"image: {name} (explained)"] = run

    def option_case(*args: str, words: tuple[str, ...]) -> Callable[[], tuple[bool, str]]:
        return lambda: one_line_refusal(cli("explain", good, "--out", work / f"o-{abs(hash(args))}", *args), *words)

    out["option: fido steps=-1"] = option_case("--method", "fido", "-o", "steps=-1", words=("steps", ">= 1"))
    out["option: fido upsample=3"] = option_case("--method", "fido", "-o", "upsample=3", words=("upsample",))
    out["option: fido objective=foo"] = option_case("--method", "fido", "-o", "objective=foo",
                                                    words=("objective", "foo"))
    out["option: an unknown method"] = option_case("--method", "nonexistent", words=("nonexistent",))
    out["option: labels top0"] = option_case("--labels", "top0", words=("top0",))
    out["option: an unknown option"] = option_case("--method", "fido", "-o", "stpes=3", words=("stpes",))

    def mp_noise() -> tuple[bool, str]:
        dest = work / "o-mp"
        return accepted(cli("explain", good, "--method", "meaningful-perturbation", "-o", "infiller=noise",
                            "-o", "steps=2", "--out", dest), dest)
    out["option: meaningful-perturbation with another infiller"] = mp_noise

    def seed_option() -> tuple[bool, str]:
        dest = work / "o-seed"
        ran = cli("explain", good, "--method", "random", "-o", "seed=3", "--out", dest)
        result = json.loads(next(dest.rglob("result.json")).read_text()) if ran.rc == 0 else {}
        return ran.rc == 0 and result.get("seed") == 3, f"result.json seed {result.get('seed')}"
    out["option: -o seed=3 is the seed result.json records"] = seed_option

    def existing() -> tuple[bool, str]:
        dest = work / "o-existing"
        first = cli("explain", good, "--out", dest)
        before = (dest / "good" / "mask.npy").read_bytes() if first.rc == 0 else b""
        ok, seen = one_line_refusal(cli("explain", good, "--out", dest, "--method", "random"), "already exists")
        return ok and (dest / "good" / "mask.npy").read_bytes() == before, seen
    out["output: an existing result is not overwritten"] = existing

    def leftover() -> tuple[bool, str]:
        dest = work / "o-leftover"
        cli("explain", good, "--out", dest)
        stale = dest / ".good.ab12cd34"  # what a killed --overwrite write of an earlier version left
        stale.mkdir()
        (stale / "mask.npy").write_bytes(b"partial")
        ran = cli("explain", good, "--out", dest, "--overwrite")
        hidden = [p.name for p in dest.iterdir() if p.name.startswith(".")]
        return ran.rc == 0 and not hidden, f"hidden folders after the next write: {hidden}"
    out["output: a killed writer's staging folder is removed"] = leftover

    def race() -> tuple[bool, str]:
        dest = work / "o-race"
        exe = [sys.executable, "-m", "saliency_core.cli", "explain", str(good), "--out", str(dest)]
        procs = [subprocess.Popen(exe + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                 for extra in ([], ["--method", "random"])]
        results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
        codes = sorted(r[0] for r in results)
        refused = [r for r in results if r[0] == 1 and "already exists" in r[2]]
        files = json.loads((dest / "good" / "result.json").read_text())["files"] if (dest / "good").exists() else []
        complete = all((dest / "good" / f).exists() for f in files) and bool(files)
        return codes == [0, 1] and len(refused) == 1 and complete, f"exit codes {codes}, result complete: {complete}"
    out["output: two runs into one --out at once"] = race

    from tests.test_reliability import HOSTILE, forged

    for name, (changes, words) in HOSTILE.items():
        def run(changes=changes, words=words, name=name) -> tuple[bool, str]:
            path = forged(SHIPPED, work / "forged.safetensors", **changes)
            return one_line_refusal(cli("explain", good, "--checkpoint", path, "--out", work / "o-ck"), words)
        out[f"checkpoint: {name}"] = run
    for name, content in {"empty": b"", "text": b"not a checkpoint", "a pickle": b"\x80\x04\x95\x00cos\nsystem\n"}.items():
        def run(content=content) -> tuple[bool, str]:
            path = work / "m.safetensors"
            path.write_bytes(content)
            return one_line_refusal(cli("explain", good, "--checkpoint", path, "--out", work / "o-ck"),
                                    "m.safetensors")
        out[f"checkpoint: {name} file"] = run

    data = work / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(data / f"{i}.png")
        rows.append(f"{i}.png,{i % 4}")

    def train_case(extra_rows: list[str], flags: list[str], words: tuple[str, ...]) -> tuple[bool, str]:
        csv = data / f"labels-{abs(hash(tuple(extra_rows + flags)))}.csv"
        csv.write_text("file,label\n" + "\n".join(rows + extra_rows) + "\n")
        run_dir = work / f"run-{abs(hash(csv.name))}"
        ok, seen = one_line_refusal(cli("train", "--data", csv, "--out", run_dir, *TINY_TRAIN, *flags), *words, rc=2)
        written = sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else []
        return ok and not written, seen + (f" (written: {written})" if written else "")

    _truncated_jpeg(data / "cut.jpg")
    out["training: a truncated JPEG in the CSV"] = lambda: train_case(["cut.jpg,1"], [], ("cut.jpg", "truncated"))
    out["training: a label that is not a class index"] = lambda: train_case(["0.png,tabby cat"], [],
                                                                           ("tabby cat", "class index"))
    out["training: conditional, batch 1, random-image"] = lambda: train_case(
        [], ["--kind", "conditional", "--batch-size", "1"], ("random-image", "at least 2"))

    def evaluate_failures() -> tuple[bool, str]:
        imgs = work / "eval"
        imgs.mkdir()
        for i in range(2):
            _png(imgs / f"ok{i}.png", _photo().resize((160, 120)))
        _truncated_jpeg(imgs / "cut.jpg")
        (imgs / "empty.png").write_bytes(b"")
        (imgs / "notes.png").write_text("hello")
        csv = imgs / "labels.csv"
        csv.write_text("file,label\nok0.png,281\ncut.jpg,1\nok1.png,281\nempty.png,2\nnotes.png,3\n")
        dest = work / "o-eval"
        ran = cli("evaluate", "--images", csv, "--methods", "center-gaussian", "--steps", "2", "--out", dest,
                  "--no-deletion")
        agg = json.loads((dest / "aggregate.json").read_text()) if (dest / "aggregate.json").exists() else {}
        failed = (agg.get("images") or {}).get("failed")
        ok, seen = one_line_refusal(ran, "3 of 5 images failed", "cut.jpg", rc=1)
        leak = any(str(work) in line for line in ran.said.splitlines() if "failed" in line)
        return ok and failed == 3 and not leak, f"{seen[:120]} (aggregate.json failed: {failed}; an absolute " \
            f"path in a failure line: {leak})"
    out["evaluate: 2 good and 3 bad images"] = evaluate_failures

    def xml_case(size: str, box: str, words: tuple[str, ...]) -> Callable[[], tuple[bool, str]]:
        def run() -> tuple[bool, str]:
            from saliency_core.metrics.annotations import read_boxes

            folder = work / f"xml-{abs(hash((size, box)))}"
            folder.mkdir()
            (folder / "img.xml").write_text(
                f"<annotation><filename>img.jpg</filename><size>{size}</size><object><name>n01</name>"
                f"<bndbox>{box}</bndbox></object></annotation>")
            warnings: list[str] = []
            try:
                read_boxes(folder, warn=warnings.append)
            except Exception as exc:  # noqa: BLE001
                return False, f"{type(exc).__name__}: {exc}"
            hit = [w for w in warnings if all(x in w for x in words)]
            return len(hit) == 1 and "\n" not in hit[0], hit[0] if hit else str(warnings)
        return run

    size = "<width>100</width><height>80</height>"
    good_box = "<xmin>1</xmin><ymin>1</ymin><xmax>50</xmax><ymax>40</ymax>"
    out["boxes: <xmax>inf</xmax>"] = xml_case(size, good_box.replace(">50<", ">inf<"), ("img.xml", "inf"))
    out["boxes: <width>inf</width>"] = xml_case(size.replace(">100<", ">inf<"), good_box, ("img.xml", "width"))
    out["boxes: <width>abc</width>"] = xml_case(size.replace(">100<", ">abc<"), good_box, ("img.xml", "abc"))
    out["boxes: an inverted box"] = xml_case(size, "<xmin>60</xmin><ymin>1</ymin><xmax>50</xmax><ymax>40</ymax>",
                                             ("img.xml", "box skipped"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the cases whose name holds this word")
    parser.add_argument("--json", default=None, help="write the rows to this file (refused if it exists)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        todo = {k: v for k, v in cases(work).items() if args.only in k}
        for name, check in todo.items():
            t0 = time.perf_counter()
            try:
                ok, seen = check()
            except Exception as exc:  # noqa: BLE001 - a bench bug or an escaped error: counted as not ok
                ok, seen = False, f"bench error {type(exc).__name__}: {exc}"
            seen = seen.replace(str(work) + os.sep, "").replace(str(work), "<tmp>")
            rows.append({"case": name, "ok": bool(ok), "seen": seen.strip()[:160],
                         "s": round(time.perf_counter() - t0, 1)})
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {rows[-1]['seen']}  ({rows[-1]['s']} s)", flush=True)
    passed = sum(r["ok"] for r in rows)
    print(f"\n{passed} of {len(rows)} ok")
    if args.json:
        dest = Path(args.json)
        if dest.exists():
            print(f"error: {dest} exists; not overwritten", file=sys.stderr)
            return 2
        from saliency_core.files import atomic_write_text

        atomic_write_text(dest, json.dumps(rows, indent=2) + "\n")
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
