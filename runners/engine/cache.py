"""Expert caches: a fixed number of equal slots, a key -> slot map and a named eviction policy.

Both tiers (pinned host memory and GPU memory) hold whole experts of one size,
so a cache is a slab of ``capacity`` slots; this module keeps the bookkeeping
(which expert sits in which slot, which to evict) apart from the memory.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable, Iterable

POLICIES = ("lru", "fifo")


class CacheFull(RuntimeError):
    """Every slot holds a pinned expert, so nothing can be evicted."""


@dataclass
class CacheStats:
    """Counters of one cache: lookups that hit or missed, inserts and evictions."""

    hits: int = 0
    misses: int = 0
    inserts: int = 0
    evictions: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a dict."""
        return dict(self.__dict__)


class ExpertCache:
    """Maps expert keys to slots ``0..capacity-1`` and evicts by ``policy``.

    ``lru`` evicts the least recently looked-up or inserted key, ``fifo`` the
    oldest inserted. Pinned keys (the experts the current layer still needs)
    are never evicted.
    """

    def __init__(self, capacity: int, policy: str = "lru") -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown eviction policy {policy!r}; known: {', '.join(POLICIES)}")
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self.policy = policy
        self._slots: OrderedDict[Hashable, int] = OrderedDict()  # order = eviction order, oldest first
        self._free = list(range(capacity - 1, -1, -1))
        self._pinned: dict[Hashable, int] = {}
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._slots

    def keys(self) -> list[Hashable]:
        """Cached keys, next victim first."""
        return list(self._slots)

    def peek(self, key: Hashable) -> int | None:
        """The key's slot, or None; counts nothing and leaves the order alone."""
        return self._slots.get(key)

    def lookup(self, key: Hashable) -> int | None:
        """The key's slot (a hit) or None (a miss); LRU refreshes the key on a hit."""
        slot = self._slots.get(key)
        if slot is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        if self.policy == "lru":
            self._slots.move_to_end(key)
        return slot

    def insert(self, key: Hashable) -> tuple[int, Hashable | None]:
        """Give ``key`` a slot, evicting if full; returns ``(slot, evicted key or None)``.

        Raises :class:`CacheFull` when every cached key is pinned, and
        ValueError when the key is already cached or the capacity is 0.
        """
        if key in self._slots:
            raise ValueError(f"{key!r} is already cached")
        if self.capacity == 0:
            raise CacheFull("cache has no slots")
        victim = None
        if self._free:
            slot = self._free.pop()
        else:
            victim = next((k for k in self._slots if k not in self._pinned), None)
            if victim is None:
                raise CacheFull(f"all {self.capacity} slots hold pinned experts")
            slot = self._slots.pop(victim)
            self.stats.evictions += 1
        self._slots[key] = slot
        self.stats.inserts += 1
        return slot, victim

    def pin(self, keys: Iterable[Hashable]) -> None:
        """Protect ``keys`` from eviction until :meth:`unpin` (pins nest)."""
        for k in keys:
            self._pinned[k] = self._pinned.get(k, 0) + 1

    def unpin(self, keys: Iterable[Hashable]) -> None:
        """Undo one :meth:`pin` of each key."""
        for k in keys:
            n = self._pinned.get(k, 0) - 1
            if n > 0:
                self._pinned[k] = n
            else:
                self._pinned.pop(k, None)


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]i?b|b|%)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_capacity(text: str, expert_bytes: int, total_experts: int) -> int:
    """A capacity in experts from ``text``.

    ``"179"`` is a number of experts; ``"3GB"``/``"2.5GiB"``/``"512MiB"`` a
    size in bytes (rounded down to whole experts); ``"70%"`` a share of
    ``total_experts`` (rounded down); ``"all"`` every expert.
    """
    if text.strip().lower() == "all":
        return total_experts
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"capacity {text!r}: expected experts (179), bytes (3GB, 2.5GiB) or a share (70%)")
    value, unit = float(m.group(1)), (m.group(2) or "").lower()
    if unit == "%":
        return int(total_experts * value / 100)
    if unit:
        return int(value * _UNITS[unit] // expert_bytes)
    if value != int(value):
        raise ValueError(f"capacity {text!r}: a number of experts must be whole")
    return int(value)
