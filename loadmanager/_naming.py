"""How attribute names become wire names, shared by models and converters."""

from __future__ import annotations

import functools

__all__ = ["camel"]


@functools.lru_cache(maxsize=512)
def camel(snake: str) -> str:
    """``default_spawn_rate`` → ``defaultSpawnRate``; the seed's JSON spelling."""
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
