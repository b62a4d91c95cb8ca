"""Explicit name -> component registries. Components are chosen by name, never by import path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from difflab.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of components of one kind (samplers, networks, recipes...).

    >>> r = Registry[int]("number")
    >>> _ = r.register("one")(1)
    >>> r.get("one")
    1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise ConfigError(f"unknown {self.kind} {name!r}; expected one of: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
