"""The hot paths the instruction-count gate measures (``benchmarks/instructions.py``).

Run by the gate under ``valgrind --tool=callgrind --instr-atstart=no`` as

    python _instructions_paths.py PATH N1 N2 LAYOUTS HOOKS_SO CONSUMER_DIR

Start-up, imports, set-up and warm-up run uninstrumented. Then, for each heap layout, the
process calls ``loop(n1)`` and ``loop(n2)`` with a callgrind dump before and after each,
so the gate reads the instructions of exactly those two calls. One JSON line per loop on
stdout lets the gate check that each loop did its work.

A separate file from the gate's own code, so that editing the gate does not change the
measured process. asv imports every module in ``benchmarks/``: nothing here is named like a
benchmark and importing this module has no side effects.
"""
import json
import os
import sys

WARMUP = 200  # at least this many operations before instrumentation starts, and at least
# n2: caches, specialisation, and high-water marks (alloc_raw stores a new one on every call
# that goes further than any before, one instruction more per call)
SETTLE = 50  # operations after each layout shift, before the first measured loop
_KEEP = []  # the blocks that shift the heap layout, alive until exit


class GateError(Exception):
    """The measurement could not be made or cannot be trusted (exit status 2)."""


# Each path: setup(consumer_dir) -> state; loop(state, n) runs exactly n operations and
# returns a small dict that must equal expect(n), so that a path that silently did
# something else (or nothing) fails the gate instead of passing it.


def _empty_setup(consumer_dir):
    import arena

    return arena.Arena(1 << 30)


def _empty_loop(a, n):
    # Reset after every 1000 allocations (64 KiB): the arena never fills and never commits
    # past its first commit step, whatever n is. That adds 1/1000 of a reset per operation.
    full, rest = divmod(n, 1000)
    for _ in range(full):
        for _ in range(1000):
            a.empty(8)
        a.reset()
    for _ in range(rest):
        a.empty(8)
    made = a.num_allocations
    a.reset()
    return {"last_batch": made, "live_views": a.live_views}


def _alloc_raw_setup(consumer_dir):
    import importlib.util
    import pathlib

    import arena

    built = sorted(pathlib.Path(consumer_dir).glob("consumer*.so"))
    if not built:
        raise GateError(f"no built consumer module in {consumer_dir}")
    spec = importlib.util.spec_from_file_location("consumer", built[0])
    consumer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(consumer)
    a = arena.Arena(1 << 30)
    a.commit(64 << 20)  # committed once: no loop ever moves the frontier
    return consumer, a


def _alloc_raw_loop(state, n):
    consumer, a = state
    consumer.time_alloc_raw(a, n, 64)  # n calls of alloc_raw(64, 16) in a C loop
    made, used = a.num_allocations, a.used
    a.reset()
    return {"num_allocations": made, "used": used}


def _reset_setup(consumer_dir):
    import arena

    a = arena.Arena(1 << 30)
    x = a.empty(8)
    del x
    return a


def _reset_loop(a, n):
    for _ in range(n):
        a.reset()
    return {"used": a.used, "live_views": a.live_views}


def _nep49_setup(consumer_dir):
    import numpy as np

    import arena

    opts = arena.ArenaOptions(1 << 30)
    if hasattr(opts, "with_small_threshold"):
        # v2 sends requests below 1 KiB to NumPy's allocator: the pair measured is the
        # arena heap's, as v1's was, so threshold 0 (nep49_small measures the default).
        opts = opts.with_small_threshold(0)
    return np, opts.reserve()


def _nep49_small_setup(consumer_dir):
    import numpy as np

    import arena

    return np, arena.Arena(1 << 30)


def _nep49_small_loop(state, n):
    np, a = state
    with a.numpy_allocator():
        for _ in range(n):
            np.empty(16)  # below the small threshold: NumPy's allocator, through the handler
        x = np.empty(16)
    mine = handler_is_arenas(x)
    del x
    return {"through_arena_handler": mine, "used": a.used, "live_views": a.live_views}


def handler_is_arenas(x):
    import numpy as np

    return np._core.multiarray.get_handler_name(x).startswith("arena_")


def _nep49_loop(state, n):
    np, a = state
    with a.numpy_allocator():
        for _ in range(n):
            np.empty(16)  # NumPy's malloc, then its free, both through the arena
        x = np.empty(16)
    inside = a.offset_of(x) >= 0
    del x
    return {"in_arena": inside, "used": a.used, "live_views": a.live_views}


def _options_setup(consumer_dir):
    from arena import ArenaOptions, Flags

    return ArenaOptions, Flags


def _options_loop(state, n):
    ArenaOptions, Flags = state
    for _ in range(n):
        ArenaOptions(1 << 30).with_flags(Flags.POPULATE).with_alignment(128)
    o = ArenaOptions(1 << 30).with_flags(Flags.POPULATE).with_alignment(128)
    return {"alignment": o.alignment, "populate": bool(o.flags & Flags.POPULATE)}


class _Path:
    def __init__(self, name, statement, setup, loop, n1, n2, expect):
        self.name, self.statement = name, statement
        self.setup, self.loop = setup, loop
        self.n1, self.n2 = n1, n2
        self.expect = expect  # n -> the dict loop(state, n) must return


# The counts are exact: n2 - n1 need only be large enough for the quotient to be exact to a
# hundredth of an instruction, and small enough to keep each run a few seconds.
PATHS = {
    p.name: p
    for p in [
        _Path("empty", "a.empty(8) on Arena(1 << 30), reset every 1000",
              _empty_setup, _empty_loop, 2_000, 12_000,
              lambda n: {"last_batch": n % 1000, "live_views": 0}),
        _Path("alloc_raw", "alloc_raw(64, 16) from a cimporting Cython module (C loop)",
              _alloc_raw_setup, _alloc_raw_loop, 10_000, 110_000,
              lambda n: {"num_allocations": n, "used": 64 * n}),
        _Path("reset", "a.reset() with nothing live",
              _reset_setup, _reset_loop, 2_000, 12_000,
              lambda n: {"used": 0, "live_views": 0}),
        _Path("nep49_pair", "np.empty(16) made and dropped in a.numpy_allocator()",
              _nep49_setup, _nep49_loop, 2_000, 12_000,
              lambda n: {"in_arena": True, "used": 0, "live_views": 0}),
        _Path("nep49_small", "np.empty(16) in a.numpy_allocator(), default small threshold",
              _nep49_small_setup, _nep49_small_loop, 2_000, 12_000,
              lambda n: {"through_arena_handler": True, "used": 0, "live_views": 0}),
        _Path("options", "ArenaOptions(1<<30).with_flags(POPULATE).with_alignment(128)",
              _options_setup, _options_loop, 100, 600,
              lambda n: {"alignment": 128, "populate": True}),
    ]
}


def shift_layout():
    """Take one more block of every small-object size class (16 to 512 bytes) and keep it.

    What a loop costs in CPython can depend on where its temporaries land (a block that
    fills or empties an allocator pool, an attribute name whose address collides in the
    type cache), which any unrelated edit can change. The gate measures in a few shifted
    layouts and keeps the smallest count.
    """
    _KEEP.append(object())
    _KEEP.append(float(len(_KEEP)) + 0.5)
    for size in range(48, 513, 16):  # a bytes object of length k takes 33 + k bytes
        _KEEP.append(bytes(size - 33))


def _child(name, n1, n2, layouts, hooks_so, consumer_dir):
    """Entry point inside valgrind: see the module docstring."""
    import ctypes
    import gc

    if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("PYTHONMALLOC") != "malloc":
        raise GateError("the measured interpreter runs with PYTHONHASHSEED=0 PYTHONMALLOC=malloc")
    hooks = ctypes.CDLL(hooks_so)
    hooks.gate_dump.argtypes = [ctypes.c_char_p]
    path = PATHS[name]
    state = path.setup(consumer_dir)
    path.loop(state, max(WARMUP, n2))
    gc.collect()
    gc.disable()  # collections are deterministic too, but would tie a path's count to the
    # number of objects everything else keeps alive
    hooks.gate_start()  # callgrind counts from here on
    loop = path.loop
    for layout in range(layouts):
        if layout:
            shift_layout()
        loop(state, SETTLE)
        out = []
        hooks.gate_dump(f"{name} layout {layout} start".encode())
        out.append(loop(state, n1))
        hooks.gate_dump(f"{name} layout {layout} n1".encode())
        out.append(loop(state, n2))
        hooks.gate_dump(f"{name} layout {layout} n2".encode())
        for n, got in zip((n1, n2), out):
            sys.stdout.write(json.dumps({"layout": layout, "n": n, "result": got}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5],
           sys.argv[6])
