"""``capedyn explore``: serve the interactive explorer (Streamlit) on a local port."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from typing import Any

from .._errors import InputError
from .entry import add_json_flag


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explore", help="interactive explorer in the browser (Streamlit; needs capedyn[app])",
        description="Start a local web app over the fitted coupling ODE and the data: analyze "
                    "a model (phase, h-field, ODE prediction with posterior bands), an ODE "
                    "explorer with sliders for a family's source terms and Nc, the phase map, "
                    "the frontier, Nc posteriors, the held-out benchmark and the predictions "
                    "tracker. Serves until stopped (Ctrl-C). Needs the optional extra: "
                    "pip install 'capedyn[app]'.")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a further host name the browser may use to reach the explorer "
                        "(e.g. behind a proxy); repeat for several. Requests naming any "
                        "other host are refused (DNS-rebinding protection)")
    p.add_argument("--fit", default="all_families", metavar="NAME",
                   help="a shipped fit name or a fit folder (default all_families)")
    p.add_argument("--data", metavar="CSV", default=None,
                   help="base-model CSV (default: the table shipped with capedyn)")
    p.add_argument("--frontier-data", metavar="CSV", default=None,
                   help="frontier CSV (default: the table shipped with capedyn)")
    p.add_argument("--headless", action="store_true",
                   help="do not open a browser window")
    add_json_flag(p)
    p.set_defaults(handler=_explore, human=_human)


def _check_port(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise InputError(f"--port {port} is not a port number (1-65535)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            s.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); pick "
                             "another --port") from None


def _check_fit(fit: str) -> None:
    """A fit folder or a shipped fit's name, checked without importing JAX (the fit itself
    loads in the background)."""
    from importlib import resources
    from pathlib import Path

    p = Path(fit)
    if p.is_dir() and (p / "meta.json").is_file():
        return
    root = resources.files("capedyn.fits")
    shipped = sorted(d.name for d in root.iterdir()
                     if d.is_dir() and d.joinpath("meta.json").is_file())
    if fit in shipped:
        return
    raise InputError(f"--fit {fit}: no fit folder (model.eqx + meta.json) there and no "
                     f"shipped fit of that name ({', '.join(shipped)})")


def _explore(args) -> dict[str, Any]:
    try:
        from streamlit.web import cli as stcli
    except ImportError:
        raise InputError("the explorer needs Streamlit and Plotly: pip install 'capedyn[app]'"
                         ) from None
    from ..explore import APP_PATH, core

    _check_port(args.host, args.port)
    # Check the input before serving (bad input fails here with one line). The fit is
    # loaded, and the solves the pages use compiled, in the background once the first page
    # is out (see capedyn.explore.core.Explorer.warm_up_async).
    _check_fit(args.fit)
    ex = core.get_explorer(args.fit, args.data, args.frontier_data)
    os.environ["CAPEDYN_EXPLORE_FIT"] = args.fit
    os.environ["CAPEDYN_EXPLORE_DATA"] = args.data or ""
    os.environ["CAPEDYN_EXPLORE_FRONTIER"] = args.frontier_data or ""
    url = f"http://{args.host}:{args.port}"
    if not args.headless:
        import webbrowser

        threading.Timer(2.0, webbrowser.open, args=(url,)).start()
    from ._explore_hosts import allowed_hosts, exposure_warning

    warning = exposure_warning(args.host)
    if warning:
        print(f"capedyn explore: warning: {warning}", file=sys.stderr, flush=True)
    print(f"capedyn explore: serving {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    started = time.time()
    flags = ["--server.port", str(args.port), "--server.address", args.host,
             "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--server.runOnSave", "false",
             "--global.developmentMode", "false", "--client.toolbarMode", "minimal",
             "--theme.base", "light", "--runner.magicEnabled", "false",
             # every error is caught and shown as a message; should one slip through,
             # the browser gets no traceback
             "--client.showErrorDetails", "none"]
    for name in allowed_hosts(args.host, args.allow_host):  # Host headers served
        flags += ["--server.allowedHosts", name]
    try:
        stcli.main(["run", str(APP_PATH), *flags], prog_name="streamlit",
                   standalone_mode=False)
    except KeyboardInterrupt:
        pass
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise InputError(f"the Streamlit server stopped with status {exc.code}") from None
    result = {"url": url, "fit": args.fit, "data": args.data,
              "frontier_data": args.frontier_data,
              "served_seconds": round(time.time() - started, 1)}
    for job in core.running_jobs():  # background computations this server started
        job.stop()
    return result


def _human(r: dict[str, Any]) -> str:
    return f"capedyn explore: stopped after {r['served_seconds']:g} s ({r['url']})"
