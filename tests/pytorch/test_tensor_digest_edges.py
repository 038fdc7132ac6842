"""Mutation pass 3 over ``torch/_agreement.py``'s fingerprints (``tests/MUTATION.md``).

The digest tests used int64 labels only, an even number of bytes: the padding of an odd
byte count (int8 / uint8 / bool tensors of odd length) could pad two bytes or none
unseen, and ``fingerprint``'s one oracle (``"abc"``) has its sign bit clear, so reading
BLAKE2b's bytes unsigned passed (an int64 slot of the record then overflows for the
names whose first byte is >= 0x80, as ``all_reduce_state``'s).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crossent.torch._agreement import fingerprint, tensor_digest  # noqa: E402

_WEYL = (0x9E3779B1, 0x85EBCA6B)


def _oracle(data: bytes) -> list[int]:
    """The two weighted sums of the signed little-endian 16-bit words of ``data``
    (one zero byte appended to an odd count), in Python integers."""
    if len(data) % 2:
        data += b"\0"
    words = np.frombuffer(data, dtype="<i2").astype(object)
    return [
        int(sum((((j + 1) * k % 2**32) // 2**16 + 1) * u for j, u in enumerate(words)))
        for k in _WEYL
    ]


@pytest.mark.parametrize("dtype", ["int8", "uint8", "bool"])
@pytest.mark.parametrize("size", [1, 7, 1001])
def test_tensor_digest_edges_of_an_odd_number_of_bytes(dtype: str, size: int) -> None:
    rng = np.random.default_rng(size)
    values = rng.integers(-128, 128, size=size).astype(np.int8)
    x = torch.from_numpy(values).to(getattr(torch, dtype))
    want = _oracle(x.numpy().tobytes())
    assert tensor_digest(x).tolist() == want
    # the pad is one zero byte: a last byte of 0 appended makes the same words
    padded = torch.cat([x, torch.zeros(1, dtype=x.dtype)])
    assert tensor_digest(padded).tolist() == want


def test_tensor_digest_edges_of_float16_and_a_non_contiguous_view() -> None:
    """Other dtypes and layouts: the bytes of the elements in their logical order."""
    x = torch.linspace(-3, 3, 12, dtype=torch.float64).reshape(3, 4)
    assert tensor_digest(x.T).tolist() == _oracle(x.T.contiguous().numpy().tobytes())
    h = x.to(torch.float16)[:, 1]
    assert tensor_digest(h).tolist() == _oracle(h.contiguous().numpy().tobytes())


@pytest.mark.parametrize("text", ["abc", "all_reduce_state", "vocab_parallel_cross_entropy"])
def test_mutation3_fingerprint_is_signed_and_fits_a_record_slot(text: str) -> None:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    want = int.from_bytes(digest, "little", signed=True)
    assert fingerprint(text) == want
    assert -(2**63) <= fingerprint(text) < 2**63
    assert torch.tensor([fingerprint(text)], dtype=torch.int64).item() == want
