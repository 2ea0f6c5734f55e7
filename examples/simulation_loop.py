"""A simulation loop on an arena: long-lived state at the bottom, one scope per step.

Heat diffusion on a square plate whose top edge is held hot. The temperature field is
allocated from the arena once; each step's temporaries come from the same arena inside
``with a.scope():`` and are freed wholesale when the scope ends, so every step reuses the
same, already mapped memory instead of asking the OS for fresh pages.

The one rule: ``a.scope()`` (like ``a.release(mark)`` and ``a.reset()``) raises BufferError
while arrays allocated inside it are still alive. Keep the temporaries as locals of a step
function (they die when it returns) or ``del`` them before the scope ends.

If nothing long-lived is in the arena, ``a.reset()`` after each step works the same way.

Run:  python examples/simulation_loop.py
"""
import numpy as np

import arena

N, STEPS, ALPHA = 256, 500, 0.2     # ALPHA <= 0.25 keeps explicit Euler stable


def step_numpy(T):
    """Reference: plain NumPy, fresh temporaries from every expression."""
    lap = T[:-2, 1:-1] + T[2:, 1:-1] + T[1:-1, :-2] + T[1:-1, 2:] - 4.0 * T[1:-1, 1:-1]
    T[1:-1, 1:-1] += ALPHA * lap


def step_arena(T, a):
    """The same operations in the same order, temporaries from the arena, ufuncs with out=."""
    inner = T[1:-1, 1:-1]
    lap = a.empty_like(inner)
    tmp = a.empty_like(inner)
    np.add(T[:-2, 1:-1], T[2:, 1:-1], out=lap)
    np.add(lap, T[1:-1, :-2], out=lap)
    np.add(lap, T[1:-1, 2:], out=lap)
    np.multiply(4.0, inner, out=tmp)
    np.subtract(lap, tmp, out=lap)
    np.multiply(ALPHA, lap, out=lap)
    np.add(inner, lap, out=inner)
    # lap and tmp are locals: they are gone when this function returns.


def main():
    with arena.Arena(1 << 30) as a:          # reserving 1 GiB of address space costs nothing
        T = a.zeros((N, N))                  # long-lived: below every per-step scope
        T[0, :] = 1.0
        for _ in range(STEPS):
            with a.scope():                  # frees this step's temporaries on exit
                step_arena(T, a)

        ref = np.zeros((N, N))
        ref[0, :] = 1.0
        for _ in range(STEPS):
            step_numpy(ref)

        print(f"heat diffusion on a {N}x{N} grid, {STEPS} steps")
        print(f"temperature 10 cells below the hot edge: {T[10, N // 2]:.6f}, "
              f"mean: {T.mean():.6f}")
        print(f"same as plain NumPy, bit for bit: {np.array_equal(T, ref)}")
        print(f"arena after the loop: used {a.used} bytes (the field alone is {T.nbytes} "
              f"bytes), high water {a.high_water} bytes, live views {a.live_views}")

        # What the rule guards against: a temporary kept past the end of its scope.
        try:
            with a.scope() as mark:
                kept = a.empty_like(T)
        except BufferError as exc:
            print(f"keeping a temporary past its scope: BufferError: {exc}")
            del kept                         # drop it, then free its level explicitly
            a.release(mark)
        print(f"after del and release: used {a.used} bytes")

        del T                                # the arena closes at the end of the block
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
