"""Every device JAX sees, for capedyn's batch axes: a 1-D ``jax.sharding`` mesh.

Two kinds of work in capedyn are many independent problems stacked along a leading axis:
the batched Levenberg–Marquardt fits (:mod:`capedyn.dynamics.optimise_many`) and the
vectorised NUTS chains (:mod:`capedyn.inference.compiled_nuts`). When JAX sees more than
one device (several GPUs; several hosts joined with ``jax.distributed.initialize()``;
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` on a CPU), these helpers lay that
axis out over a one-dimensional :class:`jax.sharding.Mesh` of all of them: the inputs are
placed with ``jax.device_put`` (across processes ``jax.make_array_from_callback``) on a
``NamedSharding`` split along the axis
(:func:`shard_batch`), and :func:`map_over_shards` has every device run the same compiled
program on its own slice, the results joined back into arrays split the same way. The
axis must be a multiple of the number of devices (callers pad it with
:func:`padded_size`). Across hosts each process runs the slices of its own devices, and
:func:`to_host` gathers the results.

With one device nothing is placed and nothing changes: the programs and the numbers are
those of a plain ``jax.jit``.
"""

from __future__ import annotations

import math
import re

__all__ = ["AXIS", "batch_mesh", "mesh_for", "n_devices", "padded_size", "shard_batch",
           "map_over_shards", "one_program_over_shards", "to_host", "ENV_CPU_DEVICES",
           "cpu_devices_for_own_process", "thread_pool_for_own_process", "enable_cpu_devices"]

AXIS = "batch"
"""Name of the mesh axis the batch (problems, chains) is split along."""

ENV_CPU_DEVICES = "CAPEDYN_CPU_DEVICES"
"""How many devices a command-line process shows its CPU as (1: leave JAX's default)."""

_FORCE_FLAG = "--xla_force_host_platform_device_count"
_DEFAULT_CPU_DEVICES = 2
"""A NUTS run keeps at least two chains per device (:func:`padded_size`), so the default
four chains fill two devices; more would sample chains only to drop them."""


def cpu_devices_for_own_process(environ=None, cores: int | None = None,
                                jax_running: bool | None = None, *,
                                spare_threads: bool = True) -> int:
    """Show the CPU to JAX as several devices in a process capedyn owns (the command
    line), so the chains of a NUTS run sample on two cores at once: one device per core up
    to :data:`_DEFAULT_CPU_DEVICES`, or ``$CAPEDYN_CPU_DEVICES``. Sets ``XLA_FLAGS``
    before JAX starts its CPU backend; leaves it alone when the user has set the device
    count there, when JAX is already running, or with one core. With several devices
    (set here or by the user) it also sizes XLA's thread pool (:func:`_size_thread_pool`;
    ``spare_threads=False``: one thread per core, for a process that makes no batched
    LAPACK call). Returns the device count set (1: none set). Never called by the library:
    a notebook keeps its devices. ``environ``, ``cores`` and ``jax_running`` default to
    this process's."""
    from ._text import positive_count

    env, jax_running = _own_process_state(environ, jax_running)
    flags = env.get("XLA_FLAGS", "")
    if jax_running:
        return 1
    if cores is None:
        from ._workers import available_cores

        cores = available_cores()
    if _FORCE_FLAG in flags:  # the user's device count
        forced = re.search(rf"{_FORCE_FLAG}=(\d+)", flags)
        if forced:
            _size_thread_pool(env, int(forced.group(1)), cores, spare_threads)
        return 1
    text = env.get(ENV_CPU_DEVICES, "").strip()
    if text:
        wanted = positive_count(text)
        if wanted is None:
            from ._errors import InputError

            raise InputError(f"{ENV_CPU_DEVICES}={text!r} is not a whole number of devices "
                             f">= 1; unset it for the default, or set it to 1 to leave JAX's "
                             "devices as they are")
    else:
        wanted = min(int(cores), _DEFAULT_CPU_DEVICES)
    if wanted > 1:
        env["XLA_FLAGS"] = f"{flags} {_FORCE_FLAG}={wanted}".strip()
        _size_thread_pool(env, wanted, cores, spare_threads)
    return wanted


_THREADS_ENV = ("PJRT_NPROC", "NPROC")
"""Environment variables from which XLA's CPU client sizes its thread pool (the first set
wins; otherwise the number of cores)."""

_SIZED_HERE = "CAPEDYN_SIZED_PJRT_NPROC"
"""Set beside ``PJRT_NPROC`` to the value capedyn chose, so that a process started from
this one (a ``capedyn bench`` stage) can tell capedyn's size from the user's and size its
own pool for its own work."""


def _user_sized_pool(env) -> bool:
    """Whether the user, not capedyn, has sized XLA's thread pool in ``env``."""
    ours = _THREADS_ENV[0] in env and env.get(_SIZED_HERE) == env[_THREADS_ENV[0]]
    return any(k in env for k in _THREADS_ENV) and not ours


def _size_thread_pool(env, devices: int, cores: int, spare_threads: bool = True) -> None:
    """Size XLA's CPU thread pool (``PJRT_NPROC``) to the cores plus the number of programs
    that may run at once, unless the user has sized it: the devices, or capedyn's worker
    threads (``$CAPEDYN_WORKERS``, default one per core) when there are more of those.

    Each running program holds a thread of that one pool, and JAX's LAPACK kernels (a
    batched Cholesky, as in a dense-mass NUTS run or a batch of LM steps) hand their batch
    to the same pool and wait for it: with one thread per core and a program per core,
    every thread can end up waiting for work that no free thread is left to run, and the
    process hangs. Seen on two cores with two devices sampling with a dense mass matrix,
    and with one device and two worker threads each running a batch of LM steps
    (``capedyn bench --stages nested_batched``). A spare thread per program prevents it.

    The spare threads cost time where no batched LAPACK call runs: XLA's runtime hands
    parts of a loop body to idle threads, and a two-device coupling-level NUTS run then
    often takes twice as long (docs/architecture.md). ``spare_threads=False`` sizes the
    pool at one thread per core, for a process whose programs make only unbatched LAPACK
    calls (those do not wait on the pool)."""
    if _user_sized_pool(env):
        return
    for key in (_THREADS_ENV[0], _SIZED_HERE):  # a size capedyn chose for a parent process
        env.pop(key, None)
    spare = max(int(devices), _worker_threads(env, cores)) if spare_threads else 0
    if spare_threads and spare <= 1:
        return  # one program at a time: XLA's default pool (one thread per core) is safe
    env[_THREADS_ENV[0]] = env[_SIZED_HERE] = str(int(cores) + spare)


def _worker_threads(env, cores: int) -> int:
    """The worker threads a sweep will run (:func:`capedyn._workers.default_workers`, read
    from ``env``); a malformed ``$CAPEDYN_WORKERS`` counts as the cores (it is refused by
    name when a sweep starts)."""
    from ._errors import InputError
    from ._workers import default_workers

    try:
        return default_workers(env, cores)
    except InputError:
        return int(cores)


def thread_pool_for_own_process(environ=None, cores: int | None = None,
                                jax_running: bool | None = None) -> None:
    """Size XLA's CPU thread pool for a process capedyn owns (the command line) that shows
    JAX one device, so its worker threads cannot starve a batched LAPACK kernel
    (:func:`_size_thread_pool`). Does nothing once JAX runs or when the user has sized the
    pool. Never called by the library. ``environ``, ``cores`` and ``jax_running`` default
    to this process's."""
    env, jax_running = _own_process_state(environ, jax_running)
    if not jax_running:
        from ._workers import available_cores

        _size_thread_pool(env, 1, available_cores() if cores is None else cores)


def enable_cpu_devices() -> int:
    """Opt in, from a script that owns its process, to what the command line does for its
    sampling commands: the CPU shown to JAX as two devices, so a NUTS run samples half its
    chains on each core (the draws are bitwise those of one device). Call it before JAX
    computes anything; returns the number of devices set (1: nothing changed, e.g. one
    core, JAX already running, or ``XLA_FLAGS`` already naming a device count). The
    library never calls it, so a notebook keeps its devices."""
    return cpu_devices_for_own_process()


def _own_process_state(environ, jax_running: bool | None):
    """(environment, whether JAX has started its backend) for the ``*_for_own_process``
    settings: this process's ``os.environ`` and state when not given."""
    import os
    import sys

    env = os.environ if environ is None else environ
    return env, _backend_started(sys.modules) if jax_running is None else jax_running


def _backend_started(modules) -> bool:
    """Whether JAX has made its backends already (then XLA_FLAGS is read and fixed)."""
    bridge = modules.get("jax._src.xla_bridge")
    return bool(getattr(bridge, "_backends", None))


def _devices() -> list:
    import jax

    return jax.devices()


def n_devices() -> int:
    """How many devices the batch axis is spread over (every device JAX sees)."""
    return len(_devices())


def batch_mesh():
    """A 1-D mesh over every device JAX sees, or None when there is only one."""
    import numpy as np
    from jax.sharding import Mesh

    devices = _devices()
    return Mesh(np.array(devices), (AXIS,)) if len(devices) > 1 else None


def padded_size(n: int, multiple: int = 1) -> int:
    """``n`` rounded up to a multiple of ``multiple`` and of the number of devices, and,
    with several devices, to at least two per device: XLA simplifies a batch of one into an
    unbatched program, which rounds differently in the last bits (measured on the NUTS
    chains), whereas slices of two or more give each problem the numbers it gets on one
    device."""
    devices = n_devices()
    step = math.lcm(int(multiple), devices)
    n = int(n) if devices == 1 else max(int(n), 2 * devices)
    return -(-n // step) * step


def _place(tree, spec):
    import equinox as eqx
    import jax
    from jax.sharding import NamedSharding

    sharding = NamedSharding(batch_mesh(), spec)
    put = jax.device_put if sharding.is_fully_addressable else _put_across_processes
    return jax.tree_util.tree_map(lambda a: put(a, sharding) if eqx.is_array(a) else a, tree)


def _put_across_processes(a, sharding):
    """``a`` placed on a sharding that spans several processes (``jax.distributed``): every
    process holds the whole batch and gives the slices of its own devices. (``jax.device_put``
    would first check that the processes' values are equal, which fails on the NaNs a batch
    carries: NaN != NaN.)"""
    import jax
    import numpy as np

    host = np.asarray(a)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def mesh_for(n: int):
    """The mesh a batch of ``n`` is split over: None with one device, or when ``n`` is not
    a multiple of the device count (the whole batch then runs on the default device)."""
    mesh = batch_mesh()
    return None if mesh is None or n % mesh.size else mesh


def shard_batch(tree, n: int):
    """Every array leaf of ``tree`` (each with leading axis ``n``) split along that axis
    over the devices of :func:`mesh_for`; ``tree`` itself when that is None."""
    from jax.sharding import PartitionSpec

    return tree if mesh_for(n) is None else _place(tree, PartitionSpec(AXIS))


def map_over_shards(fn, n_args: int):
    """``fn`` run by every device on its own slice of the batch: the first ``n_args``
    arguments are split along their leading axis (as :func:`shard_batch` placed them),
    the others are copied to each device. Each device gets its own call of ``fn`` on its
    shards; JAX dispatches the calls asynchronously, so the devices run at once and never
    wait for each other (each runs its loops to its own problems' end, with no
    collective in the program). The array results are joined into arrays split the same
    way; the other results are those of the first device.

    Each device's call compiles its own program (the device is part of the program).
    One program partitioned over the mesh by XLA instead hung in the LM step on forced
    CPU devices, and ``jax.shard_map`` breaks Lineax's and Optimistix's checks of operator
    structures, hence the per-device calls; :func:`one_program_over_shards` is the
    compile-once form for programs that ``shard_map`` accepts."""
    import equinox as eqx
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    def mapped(*args):
        dyn, static = eqx.partition(args[:n_args], eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten(dyn)
        mesh = leaves[0].sharding.mesh
        devices = [s.device for s in leaves[0].addressable_shards]
        by_device = [{s.device: s.data for s in leaf.addressable_shards} for leaf in leaves]
        outs = []
        for device in devices:
            local = jax.tree_util.tree_unflatten(treedef, [b[device] for b in by_device])
            rest = jax.tree_util.tree_map(
                lambda a: jax.device_put(a, device) if eqx.is_array(a) else a, args[n_args:])
            outs.append(fn(*eqx.combine(local, static), *rest))
        out_dyn = [eqx.partition(o, eqx.is_array)[0] for o in outs]
        sharding = NamedSharding(mesh, PartitionSpec(AXIS))

        def join(*parts):
            shape = (parts[0].shape[0] * mesh.size,) + parts[0].shape[1:]
            return jax.make_array_from_single_device_arrays(shape, sharding, list(parts))

        joined = jax.tree_util.tree_map(join, *out_dyn)
        return eqx.combine(joined, eqx.partition(outs[0], eqx.is_array)[1])

    return mapped


def one_program_over_shards(fn, mesh, n_args: int, n_total: int):
    """``fn`` as one program for every device of ``mesh`` (``jax.shard_map``): the first
    ``n_args`` of its ``n_total`` arguments split along their leading axis, the others
    copied to each device, the outputs split the same way. Each device runs ``fn`` on its
    own slice, as with :func:`map_over_shards`, but XLA compiles the program once for all
    devices instead of once per device (a NUTS sampler takes seconds to compile).

    Only for programs with no collective across the slices and none of the checks that
    reject ``shard_map``'s shapes: Lineax's operator checks (the LM step), Equinox's
    closure check in a checkpointed loop (a Diffrax solve differentiated in reverse).
    The replication check is off: nothing crosses the devices, so there is none to make.
    XLA optimises a partitioned program through its own pipeline, so the numbers are not
    always bitwise those of :func:`map_over_shards` or of one device (a test model moved
    in its last bits); a caller checks that for its own program."""
    import jax
    from jax.sharding import PartitionSpec

    specs = (PartitionSpec(AXIS),) * n_args + (PartitionSpec(),) * (n_total - n_args)
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=PartitionSpec(AXIS),
                         check_vma=False)


def to_host(tree):
    """Array leaves as NumPy arrays, gathered from every host when a leaf spans hosts
    (``jax.distributed``); a single host reads its devices directly."""
    import jax
    import numpy as np

    def get(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)

    return jax.tree_util.tree_map(get, tree)
