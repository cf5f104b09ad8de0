"""The capedyn explorer: a Streamlit page over the fitted coupling ODE and the data.

Started by ``capedyn explore`` (or ``streamlit run capedyn/explore/app.py``). Every number
comes from :mod:`capedyn.explore.core`; this script only lays it out. Errors become
messages in the page, never tracebacks.
"""

from __future__ import annotations

import datetime as _dt
import time

import numpy as np
import streamlit as st

from capedyn.explore import core, family_view, figures, views

VIEWS = ("Analyze a model", "ODE explorer", "Phase map", "Frontier", "Nc posteriors",
         "Held-out benchmark", "Predictions", "Steering")
POLL_SECONDS = 2.0

st.set_page_config(page_title="capedyn explorer", layout="wide")


@st.cache_resource(show_spinner="Loading the tables…")
def _explorer(fit: str, data: str | None, frontier: str | None) -> core.Explorer:
    # one per process: the tables now, the fitted ODE (Explorer.model) on first use
    return core.get_explorer(fit, data, frontier)


def _fail(exc: BaseException, what: str) -> None:
    st.error(f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}")


def _guarded(what: str):
    """Fragments rerun on their own: their errors become messages here too."""
    def deco(fn):
        def run(*args):
            try:
                fn(*args)
            except Exception as exc:
                _fail(exc, what)
        run.__name__ = run.__qualname__ = fn.__name__
        return run
    return deco


def _fmt_b(v: float) -> str:
    return f"{v:.3g}B"


# --------------------------------------------------------------------------- Analyze

def view_analyze(ex: core.Explorer) -> None:
    st.header("Analyze a model")
    st.caption("Size in billions of parameters, scores in percent (0–100). Any subset of "
               "the five base-model scores; or SWE-bench Verified and GPQA Diamond for a "
               "frontier model. Empty fields are ignored.")
    with st.form("analyze"):
        c = st.columns(6)
        size = c[0].text_input("Size (B params)", key="an_size", placeholder="e.g. 7")
        scores = {b: c[k + 1].text_input(core.LABELS[b], key=f"an_{b}")
                  for k, b in enumerate(core.BENCHMARKS)}
        f = st.columns(6)
        swe = f[0].text_input("SWE-bench Verified", key="an_swe")
        gpqa = f[1].text_input("GPQA Diamond", key="an_gpqa")
        submitted = st.form_submit_button("Analyze")
    if submitted:
        inp, problems = core.parse_model(size, scores, swe, gpqa)
        st.session_state["an_input"] = inp
        st.session_state["an_problems"] = problems
    for msg in st.session_state.get("an_problems", []):
        st.error(msg)
    inp = st.session_state.get("an_input")
    if inp is None:
        return
    jobs = (ex.conformal_job, ex.posterior_job)
    if inp.complete:  # the band: the conformal calibration (the Nc posterior's band meanwhile)
        for job in jobs:
            if job.state == "idle":
                job.start()
    if inp.complete and any(job.state == "running" for job in jobs):
        st.fragment(run_every=POLL_SECONDS)(_analyze_results)(ex, inp, True)
    else:
        _analyze_results(ex, inp, False)


@_guarded("analysis failed")
def _analyze_results(ex: core.Explorer, inp: core.ModelInput, polling: bool) -> None:
    try:
        res = views.analyze(ex, inp)
    except Exception as exc:
        _fail(exc, "analysis failed")
        return
    cols = st.columns(2)
    with cols[0]:
        ph = res["phase"]
        if ph is not None:
            colour = {"tax": "red", "bonus": "green", "transition": "orange"}[ph["phase"]]
            st.markdown(f"### Phase: :{colour}[{ph['phase']}]")
            st.write(ph["reason"] + ".")
            st.caption(f"classifier: {ph['classifier_phase']}; TQA_c = "
                       f"{ph['tqa_critical']:.2f}%, margin {ph['margin']:+.2f} points")
            if "gamma12_reading" in ph:
                st.write(ph["gamma12_reading"] + ".")
    with cols[1]:
        hf = res["hfield"]
        if hf is not None:
            st.markdown(f"### h-field: {hf['h']:+.1f}")
            st.write(f"Predicted GPQA {hf['predicted_gpqa']:.1f}; {hf['reading']}.")
            st.caption(hf["line"])
        for note in res["notes"]:
            st.info(note)
    if res["nearest"] is not None:  # full width: its nine columns do not fit in half
        st.markdown("**Nearest known models**")
        st.dataframe(res["nearest"].round(2), hide_index=True)
    ode = res["ode"]
    if ode is not None:
        table = ode["table"].copy()
        if ode["band"] is not None:
            lo, hi = ode["band"]
            for k, b in enumerate(core.BENCHMARKS):
                table[b] = [f"{v:.1f} [{l:.1f}, {h:.1f}]"
                            for v, l, h in zip(table[b], lo[:, k], hi[:, k])]
        else:
            table[list(core.BENCHMARKS)] = table[list(core.BENCHMARKS)].round(1)
        table = table.rename(columns=core.LABELS)
        st.markdown("**ODE prediction** (fitted field; the field parameters Nc and h of an "
                    "unseen family from the transfer rule)")
        st.dataframe(table, hide_index=True)
        st.caption(ode["band_note"])
        for note in ode.get("notes", []):  # clipped inputs, extrapolation
            st.warning(note)
        st.plotly_chart(figures.analyze_figure(inp, ode), key="an_fig")
    if polling and all(j.state in ("done", "failed") for j in (ex.conformal_job, ex.posterior_job)):
        st.rerun()  # the band is in: leave the polling fragment


# --------------------------------------------------------------------------- ODE explorer

def _reset_sliders(ex: core.Explorer, family: str) -> None:
    st.session_state.update(family_view.fitted_slider_values(ex, family))
    st.session_state["ode_for"] = family


@st.fragment
def view_ode(ex: core.Explorer) -> None:
    try:
        _ode_body(ex)
    except Exception as exc:  # a message in the page, never a trace
        _fail(exc, "ODE explorer failed")


def _ode_body(ex: core.Explorer) -> None:
    st.header("ODE explorer")
    st.caption("The fitted vector field with a family's source terms h (latent units per "
               "decade, one per benchmark) and the field's Nc parameter on sliders; the "
               "trajectory re-solves from the start model on every move. Dashed: the "
               "family's fitted values; dots: its data.")
    fams = family_view.offered_families(ex)
    c = st.columns([2, 3])
    family = c[0].selectbox("Family", fams, index=fams.index("Pythia") if "Pythia" in fams else 0,
                            key="ode_family")
    if family_view.sliders_need_reset(st.session_state, family):
        _reset_sliders(ex, family)
    rows = ex.complete_models()
    rows = rows[rows["family"] == family].sort_values("params_b")
    options = [*rows["model"], "type scores…"]
    pick = c[1].selectbox("Start model", options, key="ode_start")
    if pick == "type scores…":
        t = st.columns(6)
        typed = {"size": t[0].text_input("Size (B)", key="ode_t_size")}
        typed.update({b: t[k + 1].text_input(core.LABELS[b], key=f"ode_t_{b}")
                      for k, b in enumerate(core.BENCHMARKS)})
        start, level, messages = family_view.typed_start(typed)
        for msg in messages:
            (st.info if level == "info" else st.error)(msg)
        if start is None:
            return
    else:
        r = rows[rows["model"] == pick].iloc[0]
        start = {"params_b": float(r["params_b"]), **{b: float(r[b]) for b in core.BENCHMARKS}}
    lo, hi = views.source_bounds(ex)
    nc_lo, nc_hi = views.nc_bounds(ex)
    own = family_view.fitted_slider_values(ex, family)  # a --data family may lie outside
    nc_lo, nc_hi = min(nc_lo, own["ode_nc"] - 0.5), max(nc_hi, own["ode_nc"] + 0.5)
    lo = min(lo, min(v for k, v in own.items() if k != "ode_nc") - 0.1)
    hi = max(hi, max(v for k, v in own.items() if k != "ode_nc") + 0.1)
    s = st.columns(6)
    nc = s[0].slider("log10 Nc field parameter (B)", nc_lo, nc_hi, step=0.05, key="ode_nc",
                     help="the ODE's Nc parameter in billions, log10: it shapes the "
                          "trajectory but is barely informed by the scores; the family's "
                          "measured Nc is the coupling-level posterior shown below")
    h = [s[k + 1].slider(f"h {core.LABELS[b]}", lo, hi, step=0.02, key=f"ode_h_{b}")
         for k, b in enumerate(core.BENCHMARKS)]
    st.button("Reset to the fitted values", key="ode_reset", on_click=_reset_sliders,
              args=(ex, family))
    t0 = time.perf_counter()
    try:
        p = family_view.family_params(ex, family)
        up_to = max(100.0 * start["params_b"], float(rows["params_b"].max()) if len(rows) else 0.0)
        traj = views.trajectories(ex, start, family, nc + 9.0, h, up_to_b=up_to)
        ref = ex._cached(f"ref-{family}-{sorted(start.items())}-{up_to}",
                         lambda: views.trajectories(ex, start, family,
                                                   float(np.asarray(p.log10_nc)),
                                                   np.asarray(p.h), up_to_b=up_to))
    except Exception as exc:
        _fail(exc, "the ODE solve failed for these values")
        return
    last = traj[traj["params_b"] == traj["params_b"].max()]
    end = ", ".join(f"{core.LABELS[b]} {v:.2f}" for b, v in zip(last["benchmark"], last["score"]))
    fig = figures.trajectory_figure(traj, rows, ref)
    ms = 1e3 * (time.perf_counter() - t0)
    st.caption(family_view.coupling_nc_label(ex, family))
    st.markdown(f"{family_view.field_nc_label(nc)}; at {last['params_b'].iloc[0]:.3g}B: "
                f"<span id='ode-end'>{end}</span> <small>(solved and drawn in "
                f"<span id='ode-ms'>{ms:.0f}</span> ms)</small>", unsafe_allow_html=True)
    st.plotly_chart(fig, key="ode_fig")


# --------------------------------------------------------------------------- other views

def view_phase_map(ex: core.Explorer) -> None:
    st.header("Phase map")
    pm = views.phase_map(ex)
    f1, f2 = figures.phase_map_figures(pm)
    c = st.columns(2)
    c[0].plotly_chart(f1, key="pm_map")
    c[1].plotly_chart(f2, key="pm_gamma")
    fit = pm["fit"]
    st.caption(f"Population fit over {fit.n} usable pairs: γ12 = {fit.A:.3f}·log10 N "
               f"{fit.B:+.3f} (R² = {fit.r2:.2f}), crossing zero at {fit.nc_b:.3g}B (the "
               "population line's Nc; each family's Nc is in the Nc posteriors view).")


def view_frontier(ex: core.Explorer) -> None:
    st.header("Frontier: SWE-bench Verified × GPQA Diamond")
    fv = views.frontier_view(ex)
    st.plotly_chart(figures.frontier_figure(fv), key="fr_fig")
    st.markdown("**Per lab** (mean h over the frozen rows; slope for labs with ≥ 3 models)")
    cols = ["lab", "n", "n_core", "mean_h", "mean_h_core", "std_h", "slope", "note"]
    st.dataframe(fv["labs"][cols].round(2), hide_index=True)


def view_nc(ex: core.Explorer) -> None:
    st.header("Nc posteriors")
    job = ex.posterior_job
    if job.state == "idle":
        job.start()
    polling = job.state == "running"
    st.fragment(run_every=POLL_SECONDS if polling else None)(_nc_body)(ex, polling)


@_guarded("Nc posteriors failed")
def _nc_body(ex: core.Explorer, polling: bool) -> None:
    job = ex.posterior_job
    table = views.nc_forest(ex)
    if table is None:
        if job.state == "failed":
            st.error(f"the posterior could not be sampled: {job.error}")
        else:
            st.info(f"Sampling the coupling-level posterior with NUTS "
                    f"({job.elapsed:.0f} s so far; about half a minute on 2 cores)…")
        return
    post = job.result
    st.plotly_chart(figures.forest_figure(table), key="nc_fig")
    st.caption(f"coupling model, {post.config['chains']} chains × {post.config['samples']} "
               f"draws; {post.divergences} divergences; max R-hat "
               f"{table['rhat_max'].max():.3f}. Short chains: for the reported intervals run "
               "`capedyn posterior`.")
    cols = ["family", "nc_median_b", "nc_ci68_lo_b", "nc_ci68_hi_b", "nc_ci95_lo_b",
            "nc_ci95_hi_b", "rhat_max", "ess_bulk_min"]
    st.dataframe(table[cols].round(3), hide_index=True)
    if polling:
        st.rerun()  # the posterior is in: leave the polling fragment


def view_holdout(ex: core.Explorer) -> None:
    st.header("Held-out family benchmark")
    st.caption("Each family with ≥ 3 complete models is held out in turn; a method sees the "
               "other families and the held-out family's smallest model only.")
    job = ex.holdout_job
    if job.state == "idle":
        if st.button("Also run the coupling ODE and SINDy (background, several minutes)"):
            job.start()
    polling = job.state == "running"
    st.fragment(run_every=POLL_SECONDS if polling else None)(_holdout_body)(ex, polling)


@_guarded("held-out benchmark failed")
def _holdout_body(ex: core.Explorer, polling: bool) -> None:
    job = ex.holdout_job
    if polling and job.state != "running":
        st.rerun()
    if job.state == "running":
        st.info(f"learned methods running: {100 * job.progress:.0f}% ({job.elapsed:.0f} s)")
    elif job.state == "failed":
        st.error(f"learned methods failed: {job.error}")
    try:
        mat = views.holdout_matrix(ex)
    except Exception as exc:
        _fail(exc, "the held-out benchmark failed")
        return
    st.plotly_chart(figures.holdout_figure(mat), key="ho_fig")
    st.dataframe(mat.round(2))


def view_predictions(ex: core.Explorer) -> None:
    st.header("Predictions")
    st.caption("The authors' falsifiable predictions, each checked now against the tables: "
               "confirmed, refuted, pending (deadline not reached) or untestable (the data "
               "needed are missing; the evidence says which).")
    on = st.date_input("Check deadlines on", value=_dt.date.today(), key="pred_on")
    try:
        table = views.predictions(ex, on.isoformat())
    except Exception as exc:
        _fail(exc, "the predictions could not be evaluated")
        return
    icons = {"confirmed": "✅", "refuted": "❌", "pending": "⏳", "untestable": "❔"}
    for r in table.to_dict("records"):
        with st.expander(f"{icons[r['status']]} {r['id']}: {r['status']}"
                         + family_view.deadline_suffix(r["deadline"]),
                         expanded=True):
            st.write(r["claim"])
            st.markdown(f"**Evidence.** {r['evidence']}")
            st.caption(f"Test: {r['rule']}. Data: {r['needs']}.")


def view_steering(ex: core.Explorer) -> None:
    from capedyn.explore import steer_view

    steer_view.render(st)


# --------------------------------------------------------------------------- page

def main() -> None:
    st.sidebar.title("capedyn explorer")
    view = st.sidebar.radio("View", VIEWS, key="view")
    cfg = core.configured()
    try:
        ex = _explorer(cfg["fit"], cfg["data"], cfg["frontier"])
    except Exception as exc:
        _fail(exc, "could not load the data or the fit")
        return
    st.sidebar.caption(f"fit: {cfg['fit']}; data: {cfg['data'] or 'shipped tables'}")
    body = {"Analyze a model": view_analyze, "ODE explorer": view_ode,
            "Phase map": view_phase_map, "Frontier": view_frontier, "Nc posteriors": view_nc,
            "Held-out benchmark": view_holdout, "Predictions": view_predictions,
            "Steering": view_steering}[view]
    try:
        body(ex)
    except Exception as exc:  # a message in the page, never a trace (st.rerun/st.stop
        _fail(exc, f"{view} failed")  # raise BaseExceptions, which pass through)
    ex.warm_up_async(views.warm_up)  # the first page is out: load the fit and compile the solves


main()
