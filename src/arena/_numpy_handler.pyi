from types import TracebackType

from ._core import Arena

__test__: dict[str, str]

class NumpyAllocator:
    def __init__(self, arena: Arena) -> None: ...
    def __enter__(self) -> Arena: ...
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool: ...
