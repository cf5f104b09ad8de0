"""The batch axes spread over several devices (capedyn._devices) give the numbers of one device.

XLA_FLAGS=--xla_force_host_platform_device_count=2 makes JAX see two CPU devices; it must be
set before JAX is imported, so the check runs in a subprocess. There, each computation runs
twice: on one device (the mesh restricted to the first device, which is the plain code path
with nothing placed) and over both devices, and the subprocess reports the numbers and how
the arrays were laid out.

Tolerance: none, the numbers must be bitwise equal. Each device runs the same per-problem
operations on its slice of the batch (at least two problems per slice, see
capedyn._devices.padded_size), and no reduction crosses the batch axis, so nothing rounds
differently. A tolerance would also be meaningless for NUTS: a last-bit difference in one
gradient grows along the chain (measured: ~1e-4 after 40 draws when a device held a single
chain), so anything short of equality is a real difference. The one exception is a sampler that
shares one program over the devices (``one_program``): XLA optimises that program through
its partitioning pipeline, so equality holds per model, checked here for the
coupling-level model that uses it, not for the eight schools.

The same run() in two processes joined by ``jax.distributed`` (one CPU device each, standing
for two hosts) must give the two-device numbers bitwise in each process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.xdist_group("sharding")

# Each script starts JAX its own way (the preamble) and then defines run() (_RUN).
_ONE_HOST = textwrap.dedent(r'''
    import jax

    from capedyn._cache import enable_for_own_process

    enable_for_own_process()
    assert len(jax.devices()) == 2, jax.devices()
''')

_TWO_HOSTS = textwrap.dedent(r'''
    import sys
    import jax

    # two processes on this machine stand for two hosts: one CPU device each, joined by
    # jax.distributed; gloo carries the gathering of results between them
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2,
                               process_id=int(sys.argv[2]))
    assert len(jax.devices()) == 2 and len(jax.local_devices()) == 1, jax.devices()
''')

_RUN = textwrap.dedent(r'''
    import collections
    import json
    import numpy as np
    import numpyro
    import numpyro.distributions as dist
    from jax.sharding import PartitionSpec

    import capedyn as cd
    from capedyn import _devices
    from capedyn._jax import x64
    from capedyn.dynamics import optimise_many
    from capedyn.inference import compiled_nuts

    every_device = _devices._devices
    seen = []  # how each computation's batched outputs were laid out

    def layout(a):  # (number of shards, their shapes, split along the batch axis?)
        return [len(a.addressable_shards), [list(s.data.shape) for s in a.addressable_shards],
                getattr(a.sharding, "spec", None) == PartitionSpec(_devices.AXIS)]

    fit_to_host = optimise_many.to_host
    def spied_fit_to_host(tree):
        seen.append(("fit", layout(tree[0])))  # the per-problem objectives, each step
        return fit_to_host(tree)
    optimise_many.to_host = spied_fit_to_host

    to_host = compiled_nuts.to_host
    def spied_to_host(tree):
        draws, _ = tree
        if "theta" in draws:  # the eight schools' runs
            seen.append(("nuts", layout(draws["theta"])))
        return to_host(tree)
    compiled_nuts.to_host = spied_to_host

    compiles = collections.Counter()  # programs obtained (compiled or read from the cache)
    def count(name, secs, fun_name=None, **_):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles[fun_name] += 1
    jax.monitoring.register_event_duration_secs_listener(count)

    def schools(y, sigma):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfNormal(5.0))
        with numpyro.plate("school", y.shape[0]):
            theta = numpyro.sample("theta", dist.Normal(mu, tau))
            numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)

    df = cd.load_base_models()
    pythia, opt = (df[df["family"] == f].reset_index(drop=True) for f in ("Pythia", "OPT"))
    tables = [pythia, opt, pythia]
    params = [{"l2": 300.0}, {"l2": 300.0}, {"l2": 30.0}]
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])

    def run():
        seen.clear()
        fits = cd.CouplingODE(progress=False, steps=3, seed=0).fit_batch(tables, params)
        numbers = {f"fit{i}": np.concatenate([np.ravel(f.field_.coef), [f.loss_],
                                              [float(f.families_[n].log10_nc) for n in f.families_]])
                   for i, f in enumerate(fits)}
        programs = {}
        for one_program in (False, True):  # a program per device; one shared program
            compiles.clear()
            with x64():
                draws = compiled_nuts.run_nuts(schools, dict(y=y, sigma=sigma), chains=2,
                                               samples=15, warmup=15, seed=0, target_accept=0.8,
                                               one_program=one_program)
            programs[str(one_program)] = compiles["jit(nuts_sampler)"]
            numbers.update({f"nuts{int(one_program)}_{k}": np.ravel(v)
                            for k, v in {**draws.samples, **draws.extra}.items()})
        # the coupling-level posterior, which samples with one program for every device
        post = cd.sample_posterior(df, model="coupling", chains=2, samples=20, warmup=20,
                                   progress=False)
        numbers.update({f"coupling_{k}": np.ravel(post.idata.posterior[k].values)
                        for k in ("log10_nc", "gamma0", "mu")})
        return {k: v.astype(float).tolist() for k, v in numbers.items()}, list(seen), programs
''')

_SCRIPT = _ONE_HOST + _RUN + textwrap.dedent(r'''
    _devices._devices = lambda: every_device()[:1]
    one, one_layout, one_programs = run()
    _devices._devices = every_device
    two, two_layout, two_programs = run()
    print("RESULT" + json.dumps(dict(one=one, two=two, one_layout=one_layout, two_layout=two_layout,
                                     one_programs=one_programs, two_programs=two_programs)))
''')

_HOSTS_SCRIPT = _TWO_HOSTS + _RUN + textwrap.dedent(r'''
    numbers, layout, programs = run()
    print("RESULT" + json.dumps(dict(numbers=numbers, layout=layout, programs=programs)))
''')


def _env_without_device_settings() -> dict:
    """This process's environment without the device count and pool size it was given."""
    return {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PJRT_NPROC", "NPROC")}


def _result(stdout: str) -> dict:
    """The JSON a script printed after "RESULT"."""
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from capedyn._devices import cpu_devices_for_own_process

    # two devices, and XLA's pool sized for them, as the command line sets both
    env = _env_without_device_settings()
    env["CAPEDYN_CPU_DEVICES"] = "2"
    assert cpu_devices_for_own_process(env, jax_running=False) == 2
    script = tmp_path_factory.mktemp("sharding") / "two_devices.py"
    script.write_text(_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _result(proc.stdout)


def _kinds(layout, kind):
    return [lay for k, lay in layout if k == kind]


def test_two_devices_give_one_devices_numbers(runs):
    one, two = runs["one"], runs["two"]
    assert set(one) == set(two) and any(k.startswith("fit") for k in one) \
        and any(k.startswith("nuts") for k in one)
    for k in one:
        if k.startswith("nuts1_"):  # see the next test
            continue
        assert one[k] == two[k], f"{k}: largest difference {max(abs(a - b) for a, b in zip(one[k], two[k]))}"
    # the fits and the chains are real, different numbers (not one result copied around)
    assert one["fit0"] != one["fit2"]  # the same table under two penalties
    theta = one["nuts0_theta"]
    assert theta[: len(theta) // 2] != theta[len(theta) // 2:]  # two chains
    assert one["nuts0_theta"] == one["nuts1_theta"]  # the same sampler either way


def test_batches_are_split_over_both_devices(runs):
    fit1, fit2 = _kinds(runs["one_layout"], "fit"), _kinds(runs["two_layout"], "fit")
    nuts1, nuts2 = _kinds(runs["one_layout"], "nuts"), _kinds(runs["two_layout"], "nuts")
    assert fit1 and fit2 and len(nuts1) == len(nuts2) == 2
    # one device: the whole batch on it (3 fits padded to 8; 2 chains x 15 draws x 8 schools)
    assert all(lay[:2] == [1, [[8]]] for lay in fit1)
    assert all(lay[:2] == [1, [[2, 15, 8]]] for lay in nuts1)
    # two devices: each holds half of the padded batch (chains padded to two per device),
    # with a program per device or with one program for both
    assert all(lay == [2, [[4], [4]], True] for lay in fit2), fit2
    assert all(lay == [2, [[2, 15, 8], [2, 15, 8]], True] for lay in nuts2), nuts2


def test_one_shared_sampler_is_compiled_once_for_both_devices(runs):
    # one device: one program, which the one_program run reuses
    assert runs["one_programs"] == {"False": 1, "True": 0}
    # two devices: a program per device, or one program for both
    assert runs["two_programs"] == {"False": 2, "True": 1}
    # XLA optimises the shared (partitioned) program through its own pipeline, so equality
    # with one device is not guaranteed for every model (the eight schools moved in the
    # last bits, then drifted along the chains); the two chains are still sampled
    one, two = runs["one"]["nuts1_theta"], runs["two"]["nuts1_theta"]
    assert len(one) == len(two) and all(np.isfinite(two))
    assert two[: len(two) // 2] != two[len(two) // 2:]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_two_processes_joined_by_jax_distributed_give_two_devices_numbers(runs, tmp_path):
    """Two processes, one CPU device each, joined by ``jax.distributed`` (as two hosts
    would be): the same script in both spreads the batches over both processes' devices
    and gathers the results on each, bitwise those of two devices in one process."""
    script = tmp_path / "two_hosts.py"
    script.write_text(_HOSTS_SCRIPT)
    env = _env_without_device_settings()
    env.update(CAPEDYN_CPU_DEVICES="1", JAX_PLATFORMS="cpu")
    address = f"localhost:{_free_port()}"
    procs = [subprocess.Popen([sys.executable, str(script), address, str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    for res in (_result(out) for out, _ in outs):
        assert res["numbers"] == runs["two"]
        assert {k: v for k, v in res["numbers"].items() if not k.startswith("nuts1_")} == \
            {k: v for k, v in runs["one"].items() if not k.startswith("nuts1_")}
        # each process holds its own half of each batch: one shard of the global array
        assert _kinds(res["layout"], "fit")
        assert all(lay == [1, [[4]], True] for lay in _kinds(res["layout"], "fit"))
        assert all(lay == [1, [[2, 15, 8]], True] for lay in _kinds(res["layout"], "nuts"))
        assert len(_kinds(res["layout"], "nuts")) == 2
        # a program for its own device, or its part of the one shared program
        assert res["programs"] == {"False": 1, "True": 1}


def test_own_process_devices_follow_the_cores_and_the_users_settings():
    """The command line's CPU devices: one per core up to two; the user's XLA_FLAGS or
    CAPEDYN_CPU_DEVICES win; nothing once JAX runs; a bad count is refused by name."""
    from capedyn._devices import ENV_CPU_DEVICES, cpu_devices_for_own_process
    from capedyn._errors import InputError

    flag = "--xla_force_host_platform_device_count"
    # (environment, cores, devices set, XLA_FLAGS after, PJRT_NPROC after: whenever there
    # are several devices, cores + the devices or the worker threads ($CAPEDYN_WORKERS,
    # default one per core), whichever are more, unless the user sized XLA's thread pool)
    cases = [({}, 1, 1, None, None), ({}, 2, 2, f"{flag}=2", "4"), ({}, 8, 2, f"{flag}=2", "16"),
             ({"CAPEDYN_WORKERS": "1"}, 8, 2, f"{flag}=2", "10"),
             ({"XLA_FLAGS": "--xla_cpu_foo=1"}, 4, 2, f"--xla_cpu_foo=1 {flag}=2", "8"),
             ({"XLA_FLAGS": f"{flag}=3"}, 4, 1, f"{flag}=3", "8"),
             ({"XLA_FLAGS": f"{flag}=3", "CAPEDYN_WORKERS": "2"}, 4, 1, f"{flag}=3", "7"),
             ({"XLA_FLAGS": f"{flag}=1"}, 4, 1, f"{flag}=1", "8"),
             ({ENV_CPU_DEVICES: "1"}, 4, 1, None, None),
             ({ENV_CPU_DEVICES: "4"}, 1, 4, f"{flag}=4", "5"),
             ({"PJRT_NPROC": "3"}, 2, 2, f"{flag}=2", "3"),
             ({"NPROC": "3"}, 2, 2, f"{flag}=2", None)]
    for env, cores, want, flags, threads in cases:
        env = dict(env)
        assert cpu_devices_for_own_process(env, cores=cores, jax_running=False) == want, env
        assert env.get("XLA_FLAGS") == flags
        assert env.get("PJRT_NPROC") == threads, env
    env = {}  # once JAX runs its flags can no longer change
    assert cpu_devices_for_own_process(env, cores=2, jax_running=True) == 1 and not env
    with pytest.raises(InputError, match=ENV_CPU_DEVICES):
        cpu_devices_for_own_process({ENV_CPU_DEVICES: "two"}, cores=2, jax_running=False)


def test_sampling_processes_get_one_pool_thread_per_core_unless_the_user_sized_it():
    """spare_threads=False (the sampling commands, whose LAPACK calls are all unbatched):
    the pool at one thread per core, replacing a size capedyn chose for a parent process
    (a bench stage started by `capedyn bench`) but never the user's."""
    from capedyn._devices import _SIZED_HERE, cpu_devices_for_own_process

    # (environment, cores, PJRT_NPROC after)
    cases = [({}, 2, "2"), ({}, 8, "8"), ({"CAPEDYN_WORKERS": "4"}, 2, "2"),
             ({"PJRT_NPROC": "4", _SIZED_HERE: "4"}, 2, "2"),  # capedyn's, inherited
             ({"PJRT_NPROC": "4"}, 2, "4"),  # the user's
             ({"PJRT_NPROC": "5", _SIZED_HERE: "4"}, 2, "5"),  # changed by the user
             ({"NPROC": "3"}, 2, None)]
    for env, cores, threads in cases:
        env = dict(env)
        assert cpu_devices_for_own_process(env, cores=cores, jax_running=False,
                                           spare_threads=False) == 2
        assert env.get("PJRT_NPROC") == threads, env
    # and with spare threads, capedyn's inherited size is replaced by its own rule
    env = {"PJRT_NPROC": "2", _SIZED_HERE: "2"}
    cpu_devices_for_own_process(env, cores=2, jax_running=False)
    assert env["PJRT_NPROC"] == "4"


@pytest.mark.parametrize("command, threads", [("reproduce", "2"), ("posterior", "2"),
                                              ("crossval", "4"), ("bench", "4")])
def test_command_line_pool_per_command(command, threads):
    """On two cores: the sampling commands one pool thread per core; the others, whose
    held-out sweeps or bench stages may run batched LAPACK calls from two threads, a
    spare thread per worker thread (one per core)."""
    code = ("import os; from capedyn.cli.entry import _own_process; "
            f"_own_process({command!r}, cache=False); print(os.environ.get('PJRT_NPROC'))")
    drop = ("XLA_FLAGS", "PJRT_NPROC", "NPROC", "CAPEDYN_CPU_DEVICES", "CAPEDYN_WORKERS",
            "CAPEDYN_SIZED_PJRT_NPROC")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    from capedyn._workers import available_cores

    cores = available_cores()  # the sizes above are those of two cores; else by the rule
    want = threads if cores == 2 else ("None" if cores == 1 else
                                       str(cores if threads == "2" else 2 * cores))
    assert out.stdout.split()[-1] == want


def test_own_process_thread_pool_follows_the_worker_threads():
    """One device (every command but the sampling ones): XLA's thread pool gets the cores
    plus one thread per worker thread when there are several, none of it when the user or
    the device setting sized the pool, nothing once JAX runs."""
    from capedyn._devices import thread_pool_for_own_process

    # (environment, cores, PJRT_NPROC after)
    cases = [({}, 2, "4"), ({}, 1, None), ({"CAPEDYN_WORKERS": "1"}, 8, None),
             ({"CAPEDYN_WORKERS": "3"}, 2, "5"), ({"CAPEDYN_WORKERS": "many"}, 2, "4"),
             ({"PJRT_NPROC": "3"}, 2, "3"), ({"NPROC": "3"}, 2, None)]
    for env, cores, threads in cases:
        env = dict(env)
        thread_pool_for_own_process(env, cores=cores, jax_running=False)
        assert env.get("PJRT_NPROC") == threads, env
    env = {}
    thread_pool_for_own_process(env, cores=2, jax_running=True)
    assert not env


def test_own_process_fast_compile_flag_only_where_it_is_known_and_not_chosen():
    """XLA's quicker CPU emitters: added to XLA_FLAGS on the checked jaxlib releases, after
    the user's flags; not when the user names the flag (either value), on a jaxlib outside
    the checked range (an unknown flag would abort XLA), or once JAX runs."""
    from capedyn._compile_flags import fast_compile_for_own_process

    flag = "--xla_cpu_use_fusion_emitters=false"
    # (environment, jaxlib (major, minor), added, XLA_FLAGS after)
    cases = [({}, (0, 10), True, flag),
             ({"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}, (0, 10), True,
              f"--xla_force_host_platform_device_count=2 {flag}"),
             ({"XLA_FLAGS": "--xla_cpu_use_fusion_emitters=true"}, (0, 10), False,
              "--xla_cpu_use_fusion_emitters=true"),
             ({"XLA_FLAGS": flag}, (0, 10), False, flag),
             ({}, (0, 9), False, None), ({}, (0, 11), False, None), ({}, (1, 10), False, None)]
    for env, version, added, flags in cases:
        env = dict(env)
        assert fast_compile_for_own_process(env, version, jax_running=False) is added, env
        assert env.get("XLA_FLAGS") == flags, env
    env = {}
    assert not fast_compile_for_own_process(env, (0, 10), jax_running=True) and not env


def test_sampling_commands_see_two_devices_and_others_one():
    """The CLI's set-up before a command (``entry._own_process``) gives `capedyn posterior`
    two CPU devices on a machine with two cores, and leaves a fitting command one;
    checked in fresh processes, as JAX reads the flags once."""
    from capedyn._workers import available_cores

    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "CAPEDYN_CPU_DEVICES")}
    probe = ("import sys, jax; from capedyn.cli import entry; "
             "entry._own_process(sys.argv[1]); print(jax.device_count())")
    counts = {}
    for command in ("posterior", "holdout"):
        out = subprocess.run([sys.executable, "-c", probe, command], capture_output=True,
                             text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        counts[command] = int(out.stdout.split()[-1])
    assert counts == {"posterior": min(available_cores(), 2), "holdout": 1}


def test_a_script_opts_in_to_two_devices_before_jax_starts_and_not_after():
    """``cd.enable_cpu_devices()`` in a fresh process gives JAX one device per core up to
    two; called once JAX has computed something it changes nothing and says so (1)."""
    from capedyn._workers import available_cores

    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "CAPEDYN_CPU_DEVICES")}
    before = ("import jax, capedyn as cd; n = cd.enable_cpu_devices(); "
              "print(n, jax.device_count())")
    after = ("import jax, jax.numpy as jnp, capedyn as cd; jnp.ones(1).block_until_ready(); "
             "n = cd.enable_cpu_devices(); print(n, jax.device_count())")
    got = []
    for probe in (before, after):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             env=env, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        got.append([int(v) for v in out.stdout.split()[-2:]])
    two = min(available_cores(), 2)
    assert got == [[two, two], [1, 1]]


# A batched Cholesky in a compiled loop, large enough (150 × 150) that JAX's LAPACK kernel
# splits the batch over XLA's thread pool; each script below runs it twice at once.
_CHOLESKY_LOOP = r'''
import jax, jax.numpy as jnp

jax.config.update("jax_enable_x64", True)
n = 150

@jax.jit
def loop(a):
    def body(i, x):
        chol = jnp.linalg.cholesky(x @ jnp.swapaxes(x, -1, -2) + n * jnp.eye(n))
        return x + 1e-3 * chol / jnp.max(jnp.abs(chol))
    return jax.lax.fori_loop(0, 300, body, a)
'''

_ON_TWO_DEVICES = '''
import os
import capedyn as cd
cd.enable_cpu_devices()
''' + _CHOLESKY_LOOP + '''
from capedyn._devices import map_over_shards, shard_batch

a = shard_batch(jax.random.normal(jax.random.PRNGKey(0), (4, n, n)), 4)
for _ in range(5):
    a = jax.block_until_ready(map_over_shards(loop, 1)(a))
print("DONE", jax.device_count(), os.environ.get("PJRT_NPROC"))
'''

_ON_TWO_THREADS = '''
import os, threading
from capedyn._devices import thread_pool_for_own_process
thread_pool_for_own_process()
''' + _CHOLESKY_LOOP + '''
a = jax.random.normal(jax.random.PRNGKey(0), (4, n, n))
jax.block_until_ready(loop(a))  # compiled once, before the threads start

def run():
    x = a
    for _ in range(5):
        x = jax.block_until_ready(loop(x))

threads = [threading.Thread(target=run) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("DONE", jax.device_count(), os.environ.get("PJRT_NPROC"))
'''


def _run_or_fail_on_hang(tmp_path, source: str, what: str, **env_set) -> list[str]:
    """Run ``source`` in a new process (XLA's thread pool left for capedyn to size, plus
    ``env_set``); fail the test if it runs past 180 s. Returns its last output line, split."""
    drop = ("XLA_FLAGS", "CAPEDYN_CPU_DEVICES", "PJRT_NPROC", "NPROC")
    env = {k: v for k, v in os.environ.items() if k not in drop} | env_set
    script = tmp_path / "cholesky_at_once.py"
    script.write_text(source)
    try:
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             env=env, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} running a batched Cholesky at once hung (> 180 s)")
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()[-3:]


def test_two_devices_running_batched_lapack_at_once_do_not_hang(tmp_path):
    """A batched Cholesky in a loop, one call per device on the two CPU devices a script
    opts in to (``cd.enable_cpu_devices``), finishes: capedyn gives XLA's thread pool a
    thread more per device. With the pool at one thread per core (``NPROC=2`` on two cores)
    the same script hung in three runs of three, every pool thread waiting inside the
    LAPACK kernel."""
    from capedyn._workers import available_cores

    got = _run_or_fail_on_hang(tmp_path, _ON_TWO_DEVICES, "two CPU devices",
                               CAPEDYN_CPU_DEVICES="2")
    assert got == ["DONE", "2", str(available_cores() + 2)]


def test_two_worker_threads_running_batched_lapack_at_once_do_not_hang(tmp_path):
    """The same batched Cholesky loop run by two Python threads on one CPU device (as two
    worker threads of a held-out sweep run batched LM steps) finishes: the command line
    sizes XLA's thread pool for its worker threads too (``thread_pool_for_own_process``).
    With the pool at one thread per core (``NPROC=2`` on two cores) the same script hung
    in five runs of five."""
    from capedyn._workers import available_cores

    got = _run_or_fail_on_hang(tmp_path, _ON_TWO_THREADS, "two threads on one device",
                               CAPEDYN_WORKERS="2")
    assert got == ["DONE", "1", str(available_cores() + 2)]
