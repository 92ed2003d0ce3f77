"""GGUF: header walking, tensor bounds, and chat-template injection (CVE-2024-34359)."""

from __future__ import annotations

import struct
from pathlib import Path

from bastion.supply_chain.scan import ScanReport, Verdict, scan_paths


def _s(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf(template: str, *, tensor_offset: int = 0, data: bytes = b"\x00" * 16) -> bytes:
    kvs = [
        _s("general.architecture") + struct.pack("<I", 8) + _s("llama"),
        _s("general.alignment") + struct.pack("<II", 4, 32),
        _s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + _s("a") + _s("b") + _s("c"),
        _s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3) + b"\x00" * 12,
        _s("tokenizer.chat_template") + struct.pack("<I", 8) + _s(template),
    ]
    tensor = _s("w") + struct.pack("<IQIQ", 1, 4, 0, tensor_offset)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kvs)) + b"".join(kvs) + tensor
    return head + b"\x00" * (-len(head) % 32) + data


def scan(tmp_path: Path, data: bytes) -> ScanReport:
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    (report,) = scan_paths([path])
    return report


BENIGN = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


def test_benign_gguf_is_clean(tmp_path: Path) -> None:
    report = scan(tmp_path, gguf(BENIGN))
    assert report.format == "gguf" and report.clean, report.issues


def test_cve_2024_34359_chat_template_injection(tmp_path: Path) -> None:
    evil = "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}"
    report = scan(tmp_path, gguf(evil))
    assert report.worst is Verdict.DANGEROUS
    assert report.issues[0].rule == "gguf-chat-template"
    cycler = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
    assert scan(tmp_path, gguf(cycler)).worst is Verdict.DANGEROUS


def test_broken_gguf_is_unparseable(tmp_path: Path) -> None:
    good = gguf(BENIGN)
    assert scan(tmp_path, good[:60]).worst is Verdict.UNPARSEABLE
    assert scan(tmp_path, gguf(BENIGN, tensor_offset=4096)).worst is Verdict.UNPARSEABLE
    assert scan(tmp_path, gguf(BENIGN, tensor_offset=7)).worst is Verdict.UNPARSEABLE
    assert scan(tmp_path, good[:4] + struct.pack("<I", 9) + good[8:]).worst is Verdict.UNPARSEABLE
