"""Tracing the input of unsafe loading calls: outside sources raise the severity and are named,
bundled literal paths lower it, and everything else leaves it as the rule set it."""

from __future__ import annotations

import textwrap

import pytest

from bastion.core.threat_model import Severity
from bastion.supply_chain.audit import PatternFinding, scan_source


def one(source: str, rule: str = "BST001") -> PatternFinding:
    found = [f for f in scan_source(textwrap.dedent(source), "m.py") if f.rule == rule]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("source", "where"),
    [
        (  # a parameter, called with the command line
            """
            import sys, torch
            def load(p):
                return torch.load(p)
            load(sys.argv[1])
            """,
            "sys.argv",
        ),
        (  # argparse, through an attribute of the parsed namespace
            """
            import argparse, torch
            def load(path, device="cpu"):
                return torch.load(path, map_location=device)
            def main():
                parser = argparse.ArgumentParser()
                parser.add_argument("--model")
                args = parser.parse_args()
                model = load(args.model)
            """,
            "parse_args",
        ),
        (  # a method called through self, keyword argument
            """
            import os, torch
            class Runner:
                def restore(self, *, ckpt):
                    self.state = torch.load(ckpt)
                def start(self):
                    self.restore(ckpt=os.environ.get("CKPT"))
            """,
            "os.environ",
        ),
        (  # a helper's return value, then a path join
            """
            import os, torch
            def checkpoint_dir():
                return os.getenv("CKPT_DIR")
            torch.load(os.path.join(checkpoint_dir(), "last.pt"))
            """,
            "os.getenv",
        ),
        (  # a download
            """
            import torch
            from huggingface_hub import hf_hub_download
            path = hf_hub_download("org/repo", "model.bin")
            torch.load(path)
            """,
            "hf_hub_download",
        ),
        (  # input(), through a for loop target and an f-string
            """
            import torch
            for name in input().split():
                torch.load(f"models/{name}.pt")
            """,
            "input()",
        ),
        (  # a click command's parameter
            """
            import click, torch
            @click.command()
            @click.argument("checkpoint")
            def main(checkpoint):
                torch.load(checkpoint)
            """,
            "entry point main()",
        ),
    ],
)
def test_outside_sources_raise_severity_and_are_named(source: str, where: str) -> None:
    finding = one(source)
    assert finding.severity is Severity.HIGH  # medium (no weights_only) one step up
    assert finding.source is not None and where in finding.source
    assert "comes from outside" in finding.message


def test_unpickling_request_data_and_downloads_is_critical() -> None:
    flask = """
        import pickle
        from flask import Flask, request
        app = Flask(__name__)
        @app.route("/predict", methods=["POST"])
        def predict():
            return pickle.loads(request.get_data())
        """
    finding = one(flask, "BST003")
    assert finding.severity is Severity.CRITICAL and "flask.request" in (finding.source or "")
    downloaded = """
        import requests, joblib, io
        blob = requests.get("https://example.com/model.joblib", timeout=5).content
        model = joblib.load(io.BytesIO(blob))
        """
    assert one(downloaded, "BST004").severity is Severity.CRITICAL
    with_file = """
        import pickle, sys
        with open(sys.argv[1], "rb") as handle:
            obj = pickle.load(handle)
        """
    assert one(with_file, "BST003").severity is Severity.CRITICAL
    keras = """
        import sys, keras
        keras.saving.load_model(sys.argv[1], safe_mode=False)
        """
    assert one(keras, "BST007").severity is Severity.CRITICAL


@pytest.mark.parametrize(
    "path",
    [
        '"weights/model.pt"',
        'os.path.join(os.path.dirname(__file__), "model.pt")',
        'pathlib.Path(__file__).parent / "model.pt"',
        'importlib.resources.files("mypkg") / "model.pt"',
        "DEFAULT",
    ],
)
def test_bundled_literal_paths_lower_severity(path: str) -> None:
    source = f"""
        import importlib.resources, os, pathlib, torch
        DEFAULT = "assets/model.pt"
        torch.load({path})
        """
    finding = one(source)
    assert finding.severity is Severity.LOW and finding.source is not None
    assert "comes from outside" not in finding.message


def test_unknown_origins_keep_the_rule_severity() -> None:
    never_called = """
        import torch
        def load(p):
            return torch.load(p)
        """
    finding = one(never_called)
    assert finding.severity is Severity.MEDIUM and finding.source is None
    external_helper = """
        import torch, mylib
        torch.load(mylib.resolve("model.pt"))
        """
    assert one(external_helper).severity is Severity.MEDIUM


def test_the_worst_call_site_wins() -> None:
    source = """
        import sys, torch
        def load(p="default.pt"):
            return torch.load(p)
        load()
        load("bundled.pt")
        load(sys.argv[2])
        """
    finding = one(source)
    assert finding.severity is Severity.HIGH
    assert "sys.argv" in (finding.source or "") and "line 7" in (finding.source or "")
    only_literals = source.replace("load(sys.argv[2])", "load('other.pt')")
    assert one(only_literals).severity is Severity.LOW


def test_unrelated_calls_with_the_same_name_are_not_call_sites() -> None:
    source = """
        import pickle, sys, torch
        class Model:
            def load(self, p):
                return torch.load(p)
        pickle.load(open(sys.argv[1], "rb"))
        """
    finding = one(source)
    assert finding.severity is Severity.MEDIUM and finding.source is None
    local_function = """
        import sys, torch, json
        def load(p):
            return torch.load(p)
        json.load(open(sys.argv[1]))
        """
    assert one(local_function).severity is Severity.MEDIUM


def test_cycles_and_recursion_terminate() -> None:
    source = """
        import sys, torch
        def walk(p, n):
            if n:
                return walk(p + "/x", n - 1)
            return torch.load(p)
        a = "x"
        a = a + "y"
        walk(a, 3)
        b = b_alias = sys.argv[1]
        b = b + b_alias
        torch.load(b)
        """
    found = [f for f in scan_source(textwrap.dedent(source), "m.py") if f.rule == "BST001"]
    assert [f.severity for f in found] == [Severity.LOW, Severity.HIGH]


def test_keras_safe_mode_switches_in_source() -> None:
    source = """
        import keras
        from keras.src.saving import serialization_lib
        serialization_lib.enable_unsafe_deserialization()
        keras.saving.deserialize_keras_object(cfg, safe_mode=False)
        keras.models.load_model(path, **options)
        keras.models.load_model(path, safe_mode=True)
        """
    found = scan_source(textwrap.dedent(source), "k.py")
    assert [(f.line, f.rule) for f in found] == [(4, "BST007"), (5, "BST007"), (6, "BST007")]
    assert [f.severity for f in found] == [Severity.HIGH, Severity.HIGH, Severity.LOW]
