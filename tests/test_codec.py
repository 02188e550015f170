"""The entry codec on its own: round trips, signatures, counters, compression, garbage."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import logging
import os
import pickle
import uuid
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_rediscache import codec as codec_module
from flask_rediscache.codec import FLAG_EXPIRES, FLAG_ZLIB, FLAG_ZSTD, MAC_SIZE, MISS, VERSION, Codec

KEY = b"cache:k"


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.fixture
def codec() -> Codec:
    return Codec(b"secret", 1024)


VALUES = [
    None, True, False, 0.5, "text", "ünïcødé", b"\x00bytes", (1, 2), [1, 2], {1, 2}, frozenset({3}),
    {"a": [1, {"b": None}]}, Point(1, 2), datetime.datetime(2024, 1, 2, 3, 4, 5),
    decimal.Decimal("1.10"), uuid.UUID(int=5), 2**80, -(2**70), "", b"", [], {},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_round_trip_keeps_value_and_type(codec, value):
    out, expires_at = codec.decode(KEY, codec.encode(KEY, value))
    assert out == value and type(out) is type(value)
    assert expires_at is None


def test_small_ints_are_plain_decimal_counters(codec):
    for n in (0, 7, -7, 2**63 - 1, -(2**63)):
        data = codec.encode(KEY, n)
        assert data == str(n).encode()
        assert codec.decode(KEY, data, counters=True) == (n, None)


def test_unsigned_counters_are_read_only_when_asked(codec):
    # Issue 12.4: memoize, cached and fetch read signed entries only.
    assert codec.decode(KEY, b"1") == (MISS, None)
    assert codec.decode(KEY, b"1", counters=True) == (1, None)


def test_counter_false_signs_an_int(codec):
    data = codec.encode(KEY, 5, counter=False)
    assert data[0] == VERSION
    assert codec.decode(KEY, data) == (5, None)


def test_bool_is_not_a_counter(codec):
    data = codec.encode(KEY, True)
    assert data[0] == VERSION
    assert codec.decode(KEY, data)[0] is True


def test_int_beyond_64_bits_is_pickled(codec):
    data = codec.encode(KEY, 2**64)
    assert data[0] == VERSION
    assert codec.decode(KEY, data)[0] == 2**64


def test_int_with_logical_expiry_is_signed_not_a_counter(codec):
    data = codec.encode(KEY, 5, expires_at=1234.5)
    assert data[0] == VERSION and data[1] & FLAG_EXPIRES
    assert codec.decode(KEY, data) == (5, 1234.5)


@pytest.mark.parametrize("raw", [b"1_000", b" 12", b"+3", b"12 ", b"-", b"--1", b"1e3", b"0x10",
                                 b"99999999999999999999999"])
def test_only_exact_decimal_is_a_counter(codec, raw):
    assert codec.decode(KEY, raw, counters=True) == (MISS, None)


def test_entry_is_bound_to_its_key(codec):
    data = codec.encode(b"cache:a", {"v": 1})
    assert codec.decode(b"cache:a", data)[0] == {"v": 1}
    assert codec.decode(b"cache:b", data) == (MISS, None)


def test_key_and_body_cannot_be_resplit(codec):
    # Without a length prefix, (key + body[:n], body[n:]) would carry the same MAC.
    value = b"\xf1\x00" + b"x" * 40
    data = codec.encode(KEY, value)
    head, mac, payload = data[:2], data[2:2 + MAC_SIZE], data[2 + MAC_SIZE:]
    at = payload.index(b"\xf1\x00")
    moved_key = KEY + head + payload[:at]
    forged = payload[at:at + 2] + mac + payload[at + 2:]
    assert codec.decode(moved_key, forged) == (MISS, None)


def test_other_secret_is_a_miss():
    data = Codec(b"one", 1024).encode(KEY, "v")
    assert Codec(b"two", 1024).decode(KEY, data) == (MISS, None)


def test_every_flipped_byte_is_a_miss(codec):
    data = codec.encode(KEY, {"value": list(range(20))}, expires_at=99.0)
    for i in range(len(data)):
        tampered = bytearray(data)
        tampered[i] ^= 0x01
        value, _ = codec.decode(KEY, bytes(tampered))
        assert value is MISS, i


def test_every_truncation_is_a_miss(codec):
    data = codec.encode(KEY, ["a", "b", "c"] * 5)
    for n in range(len(data)):
        assert codec.decode(KEY, data[:n])[0] is MISS, n


def test_raw_pickle_is_never_loaded(codec, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Evil())
    assert codec.decode(KEY, payload) == (MISS, None)
    forged = bytes((VERSION, 0)) + os.urandom(MAC_SIZE) + payload
    assert codec.decode(KEY, forged) == (MISS, None)
    assert not marker.exists()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_raises(raw):
    value, _ = Codec(b"secret", 1024).decode(KEY, raw)
    if value is not MISS:  # only exact decimal counters decode without a signature
        assert isinstance(value, int) and raw == str(value).encode()


def test_rejections_are_counted_and_logged_once(codec, caplog):
    with caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        codec.decode(KEY, b"garbage")
        codec.decode(KEY, b"\xf1\x00short")
        codec.decode(KEY, b"more garbage")
    assert codec.undecodable == 3
    lines = [r for r in caplog.records if r.name == "flask_rediscache"]
    assert len(lines) == 1 and "cache:k" in lines[0].getMessage()


def test_a_missing_value_is_not_a_rejection(codec):
    assert codec.decode(KEY, None) == (MISS, None)
    assert codec.undecodable == 0


def test_compressible_payload_is_compressed(codec):
    value = "abc" * 100_000
    data = codec.encode(KEY, value)
    assert data[1] & (FLAG_ZSTD | FLAG_ZLIB)
    assert len(data) < len(value) / 10
    assert codec.decode(KEY, data)[0] == value


def test_incompressible_payload_is_stored_plain(codec):
    value = os.urandom(20_000)
    data = codec.encode(KEY, value)
    assert data[1] == 0
    assert codec.decode(KEY, data)[0] == value


def test_below_threshold_is_not_compressed():
    codec = Codec(b"s", 1024)
    assert codec.encode(KEY, "a" * 500)[1] == 0
    assert Codec(b"s", 0).encode(KEY, "a" * 5000)[1] == 0  # 0 turns compression off


def test_zlib_when_zstandard_is_missing(codec, monkeypatch):
    monkeypatch.setattr(codec_module, "zstandard", None)
    value = "xyz" * 10_000
    data = codec.encode(KEY, value)
    assert data[1] & FLAG_ZLIB
    assert codec.decode(KEY, data)[0] == value


def test_zstd_entry_without_zstandard_is_a_miss(codec, monkeypatch):
    if codec_module.zstandard is None:
        pytest.skip("zstandard not installed")
    data = codec.encode(KEY, "q" * 10_000)
    assert data[1] & FLAG_ZSTD
    monkeypatch.setattr(codec_module, "zstandard", None)
    assert codec.decode(KEY, data) == (MISS, None)


def test_signed_but_corrupt_compressed_payload_is_a_miss(codec):
    # Signed with our key but not valid zlib: decode must still not raise.
    head = bytes((VERSION, FLAG_ZLIB))
    payload = b"not zlib at all"
    data = head + codec._sign(KEY, head, payload) + payload
    assert codec.decode(KEY, data) == (MISS, None)
    assert codec.undecodable == 1  # rejected and counted, after the signature passed
    with pytest.raises(zlib.error):
        zlib.decompress(payload)  # the payload really is invalid zlib


def test_signed_pickle_of_a_vanished_class_is_a_miss(codec):
    head = bytes((VERSION, 0))
    payload = b"\x80\x05\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x08no_such_\x94\x8c\x05Thing\x94\x93\x94."
    data = head + codec._sign(KEY, head, payload) + payload
    assert codec.decode(KEY, data) == (MISS, None)
