"""Latent codes given from outside (`sentvae decode`'s JSON lines, `Model.decode(z)`): each a
row of the model's latent size, of finite numbers that float32 can hold.

NaN and infinities would decode to runs of <unk> with exit 0, numbers beyond float32's range
become infinities on the way in, and an integer of hundreds of digits makes torch fail with
an overflow of its own: all refused here, with the line or argument named.
"""

import math
import struct

from sentvae.errors import SentvaeError, first_line


def check_code(values: list, dim: int, where: str) -> list[float]:
    """One code, a list of `dim` numbers (from JSON) -> the floats; else one line naming `where`."""
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        raise SentvaeError(f"{where} must be a list of numbers")
    if len(values) != dim:
        raise SentvaeError(f"{where} has {len(values)} numbers, this model's latent has {dim}")
    out = []
    for i, v in enumerate(values):
        problem = _problem(v)
        if problem:
            raise SentvaeError(f"{where}, number {i + 1}: {problem}")
        out.append(float(v))
    return out


def check_codes(z, dim: int, name: str = "z"):
    """Codes (N, dim) as a tensor or nested lists -> a float32 tensor; else one line naming
    `name` and the row."""
    import torch

    try:
        wide = torch.as_tensor(z, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise SentvaeError(f"{name}: not codes: {first_line(e)}") from None
    if wide.dim() != 2 or wide.size(1) != dim:
        raise SentvaeError(f"{name}: codes must be (N, {dim}), not {tuple(wide.shape)}")
    narrow = wide.to(torch.float32)
    bad = ~torch.isfinite(narrow)
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        raise SentvaeError(f"{name}: row {row}, number {col + 1}: {_problem(float(wide[row, col]))}")
    return narrow


def _problem(v) -> str:
    """Why the number v cannot be a float32 code value ("" if it can)."""
    try:
        f = float(v)
    except OverflowError:
        return f"an integer of {len(str(abs(v)))} digits is beyond float32's range"
    if not math.isfinite(f):
        return f"{f} is not a finite number"
    try:                                    # float32's own rounding decides what overflows
        overflows = math.isinf(struct.unpack("f", struct.pack("f", f))[0])
    except OverflowError:                   # (older Pythons raise instead of giving inf)
        overflows = True
    return f"{f!r} is beyond float32's range (±3.4e38)" if overflows else ""
