"""The pickle machine: every way a pickle can reach a global, and fail-closed parsing."""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from scan_payloads import binbytes8, proto0_call, stack_call, u

from bastion.supply_chain.scan import ScanReport, Verdict, scan_paths


def scan_bytes(tmp_path: Path, data: bytes, name: str = "model.bin") -> ScanReport:
    path = tmp_path / name
    path.write_bytes(data)
    (report,) = scan_paths([path])
    return report


def rules(report: ScanReport) -> set[str]:
    return {i.rule for i in report.issues}


@pytest.mark.parametrize("protocol", range(6))
def test_os_system_is_dangerous_in_every_protocol(
    tmp_path: Path, evil_pickle: Callable[[int], bytes], protocol: int
) -> None:
    report = scan_bytes(tmp_path, evil_pickle(protocol))
    assert report.format == "pickle"
    assert report.worst is Verdict.DANGEROUS
    assert any(i.global_name == "posix.system" for i in report.issues)


def test_benign_pickles_of_containers_are_clean(tmp_path: Path) -> None:
    from collections import OrderedDict

    value = {"a": [1, 2.5, "x", b"y", None, True], "b": OrderedDict(c=(1, 2)), "s": {1, 2}}
    for protocol in range(6):
        report = scan_bytes(tmp_path, pickle.dumps(value, protocol=protocol))
        assert report.clean, (protocol, report.issues)


def test_stack_global_names_fetched_from_the_memo(tmp_path: Path) -> None:
    # module and name are memoised first, then fetched with BINGET: the names are not adjacent
    data = (
        b"\x80\x04" + u("os") + b"\x94" + u("unrelated") + b"0" + u("system") + b"\x94"
        + b"h\x00h\x01\x93" + u("id") + b"\x85R."
    )  # fmt: skip
    report = scan_bytes(tmp_path, data)
    assert any(i.global_name == "os.system" for i in report.issues), report.issues


def test_global_name_computed_at_load_time_is_dangerous(tmp_path: Path) -> None:
    # the module name is the result of _codecs.encode (allow-listed): not a constant
    data = (
        b"\x80\x04" + u("_codecs") + u("encode") + b"\x93" + u("bf") + u("rot13") + b"\x86R"
        + u("system") + b"\x93" + u("id") + b"\x85R."
    )  # fmt: skip
    report = scan_bytes(tmp_path, data)
    assert "computed-global" in rules(report)
    assert report.worst is Verdict.DANGEROUS


def test_build_on_an_imported_object_is_dangerous(tmp_path: Path) -> None:
    data = b"\x80\x04" + u("collections") + u("OrderedDict") + b"\x93}" + u("x") + b"Kxsb."
    report = scan_bytes(tmp_path, data)
    assert "build-on-global" in rules(report)


def test_inst_and_obj_reach_globals(tmp_path: Path) -> None:
    inst = b"(S'id'\nios\nsystem\n."
    obj = b"(cos\nsystem\nS'id'\no."
    assert scan_bytes(tmp_path, inst).worst is Verdict.DANGEROUS
    assert scan_bytes(tmp_path, obj).worst is Verdict.DANGEROUS


def test_dotted_attribute_paths(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, stack_call("torch", "serialization.os.system", "id"))
    assert report.worst is Verdict.DANGEROUS
    assert scan_bytes(tmp_path, stack_call("collections", "OrderedDict.__class__")).worst


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("subprocess", "Popen"),
        ("runpy", "run_path"),
        ("importlib", "import_module"),
        ("pickle", "loads"),
        ("pty", "spawn"),
        ("socket", "create_connection"),
        ("shutil", "rmtree"),
        ("webbrowser", "open"),
        ("code", "interact"),
        ("torch", "load"),
        ("numpy", "load"),
        ("operator", "attrgetter"),
        ("operator", "methodcaller"),
        ("functools", "partial"),
    ],
)
def test_code_execution_primitives_are_dangerous(tmp_path: Path, module: str, name: str) -> None:
    report = scan_bytes(tmp_path, proto0_call(module, name, "x"))
    assert report.worst is Verdict.DANGEROUS, report.issues


def test_unknown_global_is_suspicious_with_reason(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, stack_call("mypackage.models", "Net"))
    (issue,) = report.issues
    assert issue.verdict is Verdict.SUSPICIOUS
    assert "allow-list" in issue.reason and issue.global_name == "mypackage.models.Net"


def test_extension_codes_are_suspicious(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, b"\x80\x02\x82\x01)R.")
    assert "extension-code" in rules(report)


def test_nested_pickle_in_bytes_is_found(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    inner = evil_pickle(4)
    outer = pickle.dumps({"blob": inner}, protocol=4)
    report = scan_bytes(tmp_path, outer)
    assert "nested-pickle" in rules(report)
    assert report.worst is Verdict.DANGEROUS


def test_nested_pickle_in_a_large_payload_is_found_without_reading_it_whole(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    inner = evil_pickle(4) + b"\x00" * (200_000)
    outer = b"\x80\x04" + binbytes8(len(inner)) + inner + b"."
    report = scan_bytes(tmp_path, outer)
    assert "nested-pickle" in rules(report)


def test_concatenated_pickles_are_all_walked(
    tmp_path: Path, evil_pickle: Callable[[int], bytes]
) -> None:
    report = scan_bytes(tmp_path, pickle.dumps([1, 2]) + evil_pickle(2))
    assert report.worst is Verdict.DANGEROUS


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (pickle.dumps({"a": 1}) + b"garbage!", "data after STOP"),
        (pickle.dumps({"a": list(range(50))})[:-5], "truncated"),
        (b"\x80\x04\xff.", "unknown opcode"),
        (b"\x80\x09N.", "protocol"),
        (b"\x80\x04h\x05.", "memo"),
        (b"\x80\x04R.", "underflow"),
        (b"\x80\x04" + binbytes8(10**9) + b"xx.", "payload"),
    ],
)
def test_broken_streams_are_unparseable_never_clean(tmp_path: Path, data: bytes, why: str) -> None:
    report = scan_bytes(tmp_path, data)
    assert not report.clean, why
    assert report.worst is Verdict.UNPARSEABLE, (why, report.issues)


def test_globals_before_a_break_are_still_reported(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, proto0_call("os", "system", "id")[:-2])
    assert {i.verdict for i in report.issues} == {Verdict.DANGEROUS, Verdict.UNPARSEABLE}


def test_protocol0_pickle_without_magic_is_recognised(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, proto0_call("os", "system", "id"), name="notes.txt")
    assert report.format == "pickle" and report.worst is Verdict.DANGEROUS


def test_text_files_are_not_pickles(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, b"Install the model with pip.\n", name="README.md")
    assert report.format == "unknown" and report.clean


def test_long_framed_pickle_with_many_opcodes(tmp_path: Path) -> None:
    data = pickle.dumps([struct.pack("<d", i) for i in range(20_000)], protocol=5)
    assert scan_bytes(tmp_path, data).clean


def test_protocol0_pickle_whose_import_comes_late_is_recognised(tmp_path: Path) -> None:
    data = b"S'" + b"a" * 5000 + b"'\n0" + proto0_call("os", "system", "id")
    report = scan_bytes(tmp_path, data, name="notes.txt")
    assert report.format == "pickle" and report.worst is Verdict.DANGEROUS


def test_many_small_opcodes_are_walked_quickly(tmp_path: Path) -> None:
    import time

    data = pickle.dumps(list(range(300_000)), protocol=2)
    started = time.perf_counter()
    assert scan_bytes(tmp_path, data).clean
    assert time.perf_counter() - started < 5


def test_calling_a_value_built_at_load_time_is_suspicious(tmp_path: Path) -> None:
    # OrderedDict() is allow-listed; calling its result is not something benign files do
    data = b"\x80\x04" + u("collections") + u("OrderedDict") + b"\x93)R)R."
    assert "indirect-call" in rules(scan_bytes(tmp_path, data))


def test_python2_names_are_judged_by_what_python3_imports(tmp_path: Path) -> None:
    # fix_imports turns __builtin__.reduce into functools.reduce when loading protocol 0-2
    report = scan_bytes(tmp_path, proto0_call("__builtin__", "reduce", "x"))
    assert report.worst is Verdict.DANGEROUS
    assert "functools.reduce" in report.issues[0].reason
