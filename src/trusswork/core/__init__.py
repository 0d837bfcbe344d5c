"""Core services every trusswork system shares.

``errors`` (the exception taxonomy), ``clock`` (real and fake time),
``metrics`` (counters, gauges, histograms, Prometheus text), ``config``
(constructor arguments, ``trusswork.toml``, ``TRUSSWORK_*`` variables) and
the compiled helpers ``checksum`` (CRC32C), ``varint`` (LEB128, zigzag) and
``bits`` (bit packing). Import the module you need; this package imports
none of them eagerly.
"""
