"""grain's ``RecordMetadata`` with a lazily built per-record generator (imports grain).

grain's ``IndexSampler`` gives record ``g`` the generator ``Generator(Philox(key=seed +
g))``, the dearest part of a record (docs/sampling.md has the timings). `LazyRngMetadata`
carries the key and builds the same generator on first access of ``.rng``, so records whose
transformations never draw never build one. It is a subclass
(``isinstance(m, grain.RecordMetadata)``), pickles by value, and ``dataclasses.replace``
(grain's ``remove_record_key``) materialises the generator into a plain field.
"""

import grain
import numpy as np

_RNG_SLOT = grain.RecordMetadata.rng  # the parent's slot descriptor (slots dataclass)


class LazyRngMetadata(grain.RecordMetadata):
    """``RecordMetadata`` whose ``rng`` is ``Generator(Philox(key=rng_key))``, built on use."""

    __slots__ = ("_rng_key",)

    def __init__(self, index: int, record_key: int | None = None,
                 rng: np.random.Generator | None = None, rng_key: int | None = None):
        # Not super().__init__: its `self.rng = rng` would go through the property.
        self.index = index
        self.record_key = record_key
        _RNG_SLOT.__set__(self, rng)
        self._rng_key = rng_key

    @property
    def rng(self) -> np.random.Generator | None:
        value = _RNG_SLOT.__get__(self)
        if value is None and self._rng_key is not None:
            value = np.random.Generator(np.random.Philox(key=self._rng_key))
            _RNG_SLOT.__set__(self, value)
        return value

    @rng.setter
    def rng(self, value: np.random.Generator | None) -> None:
        _RNG_SLOT.__set__(self, value)
