"""CRC-32C (Castagnoli), the checksum framing every record trusswork stores.

Uses the CPU's crc32 instruction with three interleaved streams where the
CPU has SSE4.2, plus carry-less-multiply folding on the vector units where
it also has AVX2 and VPCLMULQDQ, and a slicing-by-8 table otherwise; all
give the same values.
``crc32c(b"123456789") == 0xE3069283``. Buffers of 32 KiB and more are
checksummed with the GIL released.

``crc32c(data, seed)`` continues a checksum: ``crc32c(b, crc32c(a)) ==
crc32c(a + b)``, matching the ``crc32c`` and ``google-crc32c`` packages.
"""

from trusswork.core._common import crc32c as crc32c
from trusswork.core._common import crc32c_combine as combine
from trusswork.core._common import crc32c_hardware_available as hardware_available

__all__ = ["combine", "crc32c", "hardware_available"]
