"""Benign model files as the real libraries save them: the scanner must pass every one."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def build_benign(root: Path) -> list[Path]:
    """Write torch, joblib/scikit-learn, NumPy, safetensors and ONNX files under ``root``."""
    import joblib
    import onnx
    import torch
    from onnx import TensorProto, helper
    from safetensors.numpy import save_file
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(5, 4)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    state = {
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "generator": np.random.default_rng(0),
        "tensors": [torch.zeros(2, dtype=d) for d in (torch.int8, torch.float16, torch.bool)],
        "epoch": 3,
    }
    torch.save(state, root / "checkpoint.pt")
    torch.save(state, root / "legacy.pt", _use_new_zipfile_serialization=False)
    x, y = load_iris(return_X_y=True)
    models = {
        "lr": LogisticRegression(max_iter=300).fit(x, y),
        "rf": RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
        "pipe": make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(x, y),
        "objects": np.array([1, "a", None], dtype=object),
    }
    joblib.dump(models, root / "model.joblib")
    joblib.dump(models, root / "model_zlib.joblib", compress=3)
    joblib.dump(models, root / "model_gz.joblib", compress=("gzip", 3))
    for protocol in (0, 2, 5):
        (root / f"model_p{protocol}.pkl").write_bytes(pickle.dumps(models, protocol=protocol))
    np.save(root / "floats.npy", np.arange(12.0).reshape(3, 4))
    np.save(root / "objects.npy", np.array([{"a": 1}, [2]], dtype=object), allow_pickle=True)
    np.savez(root / "arrays.npz", a=np.ones(3), b=np.arange(4))
    np.savez_compressed(root / "compressed.npz", a=np.ones(30))
    save_file(
        {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.int64)}, root / "w.safetensors"
    )
    weight = helper.make_tensor("W", TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(root / "model.onnx"))
    external = root / "ext"
    external.mkdir()
    onnx.save_model(
        model, str(external / "model.onnx"), save_as_external_data=True,
        all_tensors_to_one_file=True, location="weights.bin", size_threshold=0,
    )  # fmt: skip
    return sorted(p for p in root.rglob("*") if p.is_file())
