"""A shared arena across os.fork while other threads of the parent use it (test_shared.py has
the rest of the fork scenarios; its ``run`` runs one in a fresh interpreter).

A forked child holds the views it inherits, but only publishes them in its after-fork
handler: until then the parent holds them for it, in every thread, not only in the one that
waits for the child inside os.fork.
"""
import pytest

from helpers import check_child
from test_shared import run

ANOTHER_THREAD = """
import os, threading
armed = []
ready_r, ready_w = os.pipe()
gate_r, gate_w = os.pipe()
N = 1 << 12


def gate():  # in the child, before arena's handler: held until the parent's thread is done
    if armed:
        os.write(ready_w, b".")
        os.read(gate_r, 1)


def late():  # in the parent, after arena's before-fork handler and before fork()
    if armed == ["late"]:
        box.append(a.full(N, 1.0))


# Registered before arena is imported: ``gate`` runs before arena's after-in-child handler,
# ``late`` after its before-fork handler.
os.register_at_fork(before=late, after_in_child=gate)
from arena import ArenaOptions, Flags

a = ArenaOptions(1 << 26).with_flags(Flags.SHARED).reserve()
for when in ("held", "late"):
    box = [a.full(N, 1.0)] if when == "held" else []
    said = []

    def other():  # while the child is stopped before it has published what it inherited
        os.read(ready_r, 1)
        box.clear()  # this process's copy goes
        try:
            a.reset()
            a.full(N, 9.0)  # over the child's inherited view
            said.append("reset")
        except BufferError as exc:
            said.append(str(exc))
        os.write(gate_w, b".")

    t = threading.Thread(target=other)
    t.start()
    r, w = os.pipe()
    armed.append(when)
    pid = os.fork()
    if pid == 0:
        x = box[0]
        os.write(w, b"1" if (x == 1.0).all() else b"0")
        os._exit(0)
    armed.clear()
    t.join()
    assert os.read(r, 1) == b"1", (when, "the child's inherited view was overwritten", said)
    assert "a child this process is forking is still taking over" in said[0], (when, said)
    os.waitpid(pid, 0)
    a.reset()  # the child is gone
    assert a.used == 0
print("ok")
"""


def test_another_thread_cannot_free_what_a_child_being_forked_inherits():
    """Another thread of the parent drops its copy of an array and resets while the forking
    thread waits for the child (stopped, deterministically, before arena's after-fork
    handler): the reset is refused. Also for an array made after arena's before-fork handler
    ran (another handler may let threads run before fork() itself). Before: the reset freed
    the child's inherited array and the next allocation aliased it."""
    assert check_child(ANOTHER_THREAD).split() == ["ok"]


@pytest.mark.rlimit
def test_a_failed_fork_leaves_nothing_held():
    """A fork that fails still runs the after-in-parent handlers: the hold is gone."""
    assert check_child("""
        import os, resource
        from arena import ArenaOptions, Flags
        a = ArenaOptions(1 << 26).with_flags(Flags.SHARED).reserve()
        x = a.full(10, 1.0)
        try:
            if os.getuid() == 0:  # root is not held to RLIMIT_NPROC
                os.setgid(65534)
                os.setuid(65534)
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        except (OSError, ValueError):
            print("skip")
            raise SystemExit
        try:
            pid = os.fork()
        except OSError:
            pass
        else:
            if pid == 0:
                os._exit(0)
            print("skip")
            raise SystemExit
        del x
        a.reset()
        print(a.used)
    """).split() in (["0"], ["skip"])


def test_a_child_forked_while_another_thread_waits_in_reset_can_close(tmp_path):
    """The child inherits the busy count of the parent's thread that waits in reset() for
    another process: that thread is not in the child (before: its close was refused for
    ever)."""
    run(tmp_path, """
        import threading
        keep = []
        a = shared(1 << 28)
        holder = forked(lambda: keep.append(a.full(10, 1.0)), keep.clear)
        holder.step()                            # a view that reset() waits for
        waiting, forked_now = threading.Event(), threading.Event()
        sleep = time.sleep

        def in_reset_wait(seconds):              # reset's grace sleeps: fork in there
            if threading.current_thread() is t and not waiting.is_set():
                waiting.set()
                forked_now.wait()
            sleep(seconds)

        time.sleep = in_reset_wait
        t = threading.Thread(target=lambda: refused(a.reset, BufferError,
                                                    f"process {holder.pid}"))
        t.start()
        waiting.wait()
        child = forked(a.close)
        forked_now.set()
        t.join()
        time.sleep = sleep
        child.finish()                           # its close() went through
        holder.finish()
        a.reset()
        """)
