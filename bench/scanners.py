"""bastion's model-file scanner against picklescan, modelscan and fickling, on one corpus.

Run ``python -m bench.scanners [--repeat N]``. Builds a corpus of benign files (saved by torch,
joblib, scikit-learn, NumPy, safetensors) and malicious ones (classic payloads and the
advisories' bypass techniques), runs each scanner in its own process over all of it, and writes
``bench/results/scanners.json`` plus a Markdown table: detections per file, false positives,
seconds (the median of ``--repeat`` timed passes, so one stall on a shared machine does not
decide the figure, and the first pass alone), peak resident memory, and peak memory on one
512 MiB file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

RESULTS = Path(__file__).with_name("results")
SCANNERS = ("bastion", "picklescan", "modelscan", "fickling")
BIG = 512 * 1024 * 1024


class _Evil:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("touch /tmp/bastion-bench-pwned",))


def _u(text: str) -> bytes:
    return b"\x8c" + bytes([len(text)]) + text.encode()


def _stack_call(module: str, name: str, arg: str) -> bytes:
    return b"\x80\x04" + _u(module) + _u(name) + b"\x93" + _u(arg) + b"\x85R."


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _patch(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def build_corpus(root: Path) -> dict[str, bool]:
    """Write the corpus; returns file name -> True when the file is malicious."""
    import joblib
    import numpy as np
    import torch
    from safetensors.numpy import save_file
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    truth: dict[str, bool] = {}

    def put(name: str, data: bytes, bad: bool) -> None:
        (root / name).write_bytes(data)
        truth[name] = bad

    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(4, 8)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state()}
    torch.save(state, root / "benign_checkpoint.pt")
    torch.save(state, root / "benign_legacy.pt", _use_new_zipfile_serialization=False)
    x, y = load_iris(return_X_y=True)
    est = {
        "lr": LogisticRegression(max_iter=300).fit(x, y),
        "rf": RandomForestClassifier(3).fit(x, y),
    }
    joblib.dump(est, root / "benign_model.joblib")
    (root / "benign_model.pkl").write_bytes(pickle.dumps(est, protocol=4))
    np.save(root / "benign_array.npy", np.arange(10.0))
    np.save(root / "benign_objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    np.savez(root / "benign_arrays.npz", a=np.ones(3))
    save_file({"w": np.ones((4, 4), np.float32)}, root / "benign_weights.safetensors")
    truth.update({p.name: False for p in root.iterdir()})

    evil = {p: pickle.dumps(_Evil(), protocol=p) for p in range(6)}
    for p, data in evil.items():
        put(f"evil_os_system_p{p}.pkl", data, True)
    put("evil_pip_main_cve_2025_1716.pkl", _stack_call("pip", "main", "install"), True)
    put(
        "evil_asyncio_cve_2025_10157.pkl",
        _stack_call("asyncio.unix_events", "_UnixSubprocessTransport", "x"),
        True,
    )
    put("evil_runpy.pkl", _stack_call("runpy", "run_path", "/tmp/x.py"), True)
    put("evil_exec.pkl", _stack_call("builtins", "exec", "print(1)"), True)
    put("evil_renamed_cve_2025_10155.bin", evil[4], True)
    put("evil_nested_in_bytes.pkl", pickle.dumps({"blob": evil[4]}, protocol=4), True)
    put("evil_after_benign.pkl", pickle.dumps([1]) + evil[2], True)
    put("evil_torch.pt", _zip({"archive/data.pkl": evil[2]}), True)
    put(
        "evil_torch_ext_cve_2025_1889.pt",
        _zip({"archive/data.pkl": pickle.dumps([1]), "archive/x.cfg": evil[2]}),
        True,
    )
    put(
        "evil_zip_name_cve_2025_1944.pt",
        _patch(_zip({"archive/data.pkl": evil[2]}), 30, b"archive/data.pkX"),
        True,
    )
    flagged = _zip({"archive/data.pkl": evil[2]})
    flagged = _patch(_patch(flagged, 6, b"\x01\x00"), flagged.rfind(b"PK\x01\x02") + 8, b"\x01\x00")
    put("evil_zip_flags_cve_2025_1945.pt", flagged, True)
    crc = _zip({"archive/data.pkl": evil[2]})
    crc = _patch(_patch(crc, 14, b"\0\0\0\0"), crc.rfind(b"PK\x01\x02") + 16, b"\0\0\0\0")
    put("evil_zip_crc_cve_2025_10156.pt", crc, True)
    legacy = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {}))
    put("evil_legacy_cve_2025_32434.pt", legacy + evil[2] + pickle.dumps([], protocol=2), True)
    buf = io.BytesIO()
    np.save(buf, np.array([None], dtype=object), allow_pickle=True)
    npy = buf.getvalue()
    put("evil_objects.npy", npy[: npy.index(b"\n") + 1] + evil[3], True)
    put("evil_nested.zip", _zip({"inner.zip": _zip({"model.pkl": evil[2]})}), True)
    lam = {
        "class_name": "Sequential",
        "config": {"layers": [{"class_name": "Lambda", "config": {}}]},
    }
    put(
        "evil_lambda_cve_2024_3660.keras",
        _zip({"config.json": json.dumps(lam).encode(), "metadata.json": b"{}"}),
        True,
    )
    for name, fn in (
        (
            "evil_keras_unsafe_mode_cve_2025_9906.keras",
            ("keras.config", "enable_unsafe_deserialization"),
        ),
        ("evil_keras_get_file_cve_2025_8747.keras", ("keras.utils", "get_file")),
    ):
        ref = {"module": fn[0], "class_name": "function", "config": fn[1], "registered_name": fn[1]}
        dense = {"module": "keras.layers", "class_name": "Dense", "config": {"activation": ref}}
        cfg = {"class_name": "Sequential", "module": "keras", "config": {"layers": [dense]}}
        put(name, _zip({"config.json": json.dumps(cfg).encode(), "metadata.json": b"{}"}), True)
    graph = 'node { name: "x" op: "Placeholder" } node { name: "y" op: "Relu" input: "x" }'
    text = f"saved_model_schema_version: 1\nmeta_graphs {{ graph_def {{ {graph} }} }}\n"
    put("benign_saved_model.pbtxt", text.encode(), False)
    read_file = text.replace('op: "Relu"', 'op: "ReadFile"')
    put("evil_read_file_saved_model.pbtxt", read_file.encode(), True)
    from onnx import TensorProto, helper

    tensor = helper.make_tensor("W", TensorProto.FLOAT, [1], [0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../../etc/passwd"), ("offset", "0"), ("length", "4")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    out = helper.make_tensor_value_info("W", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph([], "g", [], [out], [tensor]))
    put("evil_onnx_traversal_cve_2022_25882.onnx", model.SerializeToString(), True)
    template = "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}"
    put("evil_gguf_template_cve_2024_34359.gguf", _gguf(template), True)
    put("benign_model.gguf", _gguf("{% for m in messages %}{{ m['content'] }}{% endfor %}"), False)
    return truth


def _gguf(template: str) -> bytes:
    def s(text: str) -> bytes:
        return len(text.encode()).to_bytes(8, "little") + text.encode()

    kv = s("tokenizer.chat_template") + (8).to_bytes(4, "little") + s(template)
    tensor = s("w") + (1).to_bytes(4, "little") + (4).to_bytes(8, "little") + bytes(12)
    head = (
        b"GGUF" + (3).to_bytes(4, "little") + (1).to_bytes(8, "little") + (1).to_bytes(8, "little")
    )
    head += kv + tensor
    return head + bytes(-len(head) % 32) + bytes(16)


def _detect(name: str, path: Path) -> str:
    """Return 'found', 'clean' or 'error' for one scanner on one file."""
    try:
        if name == "bastion":
            from bastion.supply_chain.scan import scan_paths

            return "clean" if scan_paths([path])[0].clean else "found"
        if name == "picklescan":
            from picklescan.scanner import scan_file_path

            r = scan_file_path(str(path))
            if r.issues_count or r.infected_files:
                return "found"
            return "error" if r.scan_err else "clean"
        if name == "modelscan":
            from modelscan.modelscan import ModelScan

            res = ModelScan().scan(str(path))
            return "found" if res["issues"] else ("error" if res["errors"] else "clean")
        import fickling

        return "clean" if fickling.is_likely_safe(str(path)) else "found"
    except Exception:  # a peer crashing on a file is its verdict: it did not detect
        return "error"


def _worker(name: str, repeat: int, files: list[str]) -> None:
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:  # warm each scanner's imports, lazy ones too
        warm = Path(tmp)
        np.save(warm / "warm.npy", np.zeros(2))
        (warm / "warm.pkl").write_bytes(pickle.dumps({"warm": [1.0]}))
        for path in (Path(__file__), warm / "warm.npy", warm / "warm.pkl"):
            _detect(name, path)
    passes, verdicts = [], {}
    for _ in range(repeat):
        start = time.perf_counter()
        verdicts = {Path(f).name: _detect(name, Path(f)) for f in files}
        passes.append(time.perf_counter() - start)
    record = {
        "verdicts": verdicts,
        "seconds": statistics.median(passes),
        "first_pass_seconds": passes[0],
        "max_rss_kib": _peak_rss_kib(),
    }
    print(json.dumps(record))


def _peak_rss_kib() -> int:
    """This process's peak RSS (``VmHWM``; unlike ``ru_maxrss`` it is not inherited on exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _run(name: str, files: list[Path], repeat: int = 1) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", name, str(repeat), *map(str, files)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _big_file(root: Path) -> Path:
    """A 512 MiB benign pickle (one BINBYTES8 payload), written sparse."""
    path = root / "big_benign.pkl"
    with path.open("wb") as f:
        f.write(b"\x80\x04\x8e" + BIG.to_bytes(8, "little"))
        f.seek(BIG, 1)
        f.write(b".")
    return path


def main(repeat: int) -> None:
    """Build the corpus, run every scanner, write JSON and print the Markdown tables."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        truth = build_corpus(root)
        files = sorted(root / n for n in truth)
        runs = {name: _run(name, files, repeat) for name in SCANNERS}
        big = _big_file(root)
        small = _run("bastion", [root / "benign_model.pkl"])["max_rss_kib"]
        big_runs = {name: _run(name, [big]) for name in SCANNERS}
    from bastion import __version__

    versions = {n: __version__ if n == "bastion" else version(n) for n in SCANNERS}
    rows = ["| file | truth | " + " | ".join(SCANNERS) + " |", "|---|---|" + "---|" * len(SCANNERS)]
    for name in sorted(truth):
        cells = [str(runs[s]["verdicts"][name]) for s in SCANNERS]  # type: ignore[index]
        rows.append(
            f"| {name} | {'malicious' if truth[name] else 'benign'} | " + " | ".join(cells) + " |"
        )
    columns = (
        "scanner", "version", "detected", "missed", "false positives", "errors",
        "seconds (median pass)", "seconds (first pass)", "peak RSS MiB",
        "512 MiB file: seconds", "512 MiB file: peak RSS MiB",
    )  # fmt: skip
    summary = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    figures: dict[str, dict[str, object]] = {}
    for s in SCANNERS:
        v: dict[str, str] = runs[s]["verdicts"]  # type: ignore[assignment]
        fig: dict[str, object] = {
            "version": versions[s],
            "detected": sum(1 for n, bad in truth.items() if bad and v[n] == "found"),
            "missed": sum(1 for n, bad in truth.items() if bad and v[n] != "found"),
            "false_positives": sum(1 for n, bad in truth.items() if not bad and v[n] != "clean"),
            "errors": sum(1 for x in v.values() if x == "error"),
            "seconds": round(float(runs[s]["seconds"]), 4),  # type: ignore[arg-type]
            "first_pass_seconds": round(float(runs[s]["first_pass_seconds"]), 4),  # type: ignore[arg-type]
            "peak_rss_mib": round(int(runs[s]["max_rss_kib"]) / 1024),  # type: ignore[call-overload]
            "big_file_seconds": round(float(big_runs[s]["seconds"]), 3),  # type: ignore[arg-type]
            "big_file_rss_mib": round(int(big_runs[s]["max_rss_kib"]) / 1024),  # type: ignore[call-overload]
            "big_file_verdict": big_runs[s]["verdicts"],
        }
        figures[s] = fig
        cells = [s] + [str(fig[k]) for k in list(fig)[:-1]]
        summary.append("| " + " | ".join(cells) + " |")
    RESULTS.mkdir(exist_ok=True)
    record = {
        "python": platform.python_version(),
        "timed_passes": repeat,
        "malicious": sum(truth.values()),
        "benign": len(truth) - sum(truth.values()),
        "bastion_small_file_rss_mib": round(int(small) / 1024),  # type: ignore[call-overload]
        "scanners": figures,
        "per_file": {s: runs[s]["verdicts"] for s in SCANNERS},
    }
    (RESULTS / "scanners.json").write_text(json.dumps(record, indent=2) + "\n")
    print("\n".join(summary))
    print()
    print("\n".join(rows))


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="timed passes over the corpus per scanner; 'seconds' is their median (default 5)",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    main(args.repeat)


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    else:
        _cli()
