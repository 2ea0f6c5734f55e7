"""A tiny JIT: write x86-64 machine code into an arena, flip it to executable, call it.

W^X holds throughout: the code is written while the arena is read/write, and the arena is
switched to read/execute (never both) before the call. `make_exec()` refuses while a
writable view of the code is alive, so the array that held it is dropped first.

    python examples/tiny_jit.py
"""
import ctypes
import platform

import numpy as np

import arena


def compile_add_const(k: int) -> bytes:
    """Machine code for ``int f(int x) { return x + k; }`` (System V x86-64)."""
    return bytes([0x8D, 0x87]) + k.to_bytes(4, "little", signed=True) + bytes([0xC3])
    # lea eax, [rdi + k]; ret


def main():
    if platform.machine() != "x86_64":
        raise SystemExit("this example emits x86-64 code")
    a = arena.Arena(1 << 20)
    code = a.array(np.frombuffer(compile_add_const(42), dtype=np.uint8))
    address = a.address + a.offset_of(code)
    del code                 # no writable view may outlive the switch to exec
    a.make_exec()
    add42 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(address)
    print(f"add42(100) = {add42(100)}; protection = {a.protection.name}")


if __name__ == "__main__":
    main()
