"""Offline training data sets.

| name                    | what                                                         |
| ----------------------- | ------------------------------------------------------------ |
| ``fetch_debian_dataset`` | photos + RGBA stamps from Debian packages, with a manifest   |
| ``DebianFetchError``    | raised when apt/dpkg fail or a checksum does not match       |

Imported lazily, so ``python -m eradiff.train.datasets.debian`` runs the module only once.
"""

__all__ = ["DebianFetchError", "fetch_debian_dataset"]


def __getattr__(name: str):
    if name in __all__:
        from eradiff.train.datasets import debian

        return getattr(debian, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
