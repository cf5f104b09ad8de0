"""The explorer's "Steering" view: the authors' published internal coupling and steering
results, and, when the ``steer`` extra is installed, steering a local model.

Kept apart from ``app.py`` so the view is one idea in one file; ``app.py`` only lists it.
"""

from __future__ import annotations

from typing import Any

STEER_MISSING_HINT = ('Steering a model needs the steer extra (PyTorch and transformers): '
                      'pip install torch==2.13.0 && pip install -e ".[steer]"')


def steer_extra() -> tuple[Any, str | None]:
    """(the ``capedyn.steer`` module, None), or (None, a one-line reason) without the extra."""
    try:
        from capedyn import steer
    except ImportError as exc:
        return None, f"{STEER_MISSING_HINT} ({exc})"
    return steer, None


def published_summary() -> dict[str, Any]:
    """The tables the view shows: per-model internal coupling and the steering runs with
    reported versus recomputed "changed" counts."""
    from capedyn.data.published import load_internal_coupling, load_steering_results

    c = load_internal_coupling()
    cols = ["model", "params_b", "measure", "pair", "value", "cooperative_pct",
            "competing_count", "source", "flags"]
    runs = load_steering_results(runs=True)
    return {"coupling": c[cols], "runs": runs}


def render(st) -> None:
    """Draw the view with the Streamlit module ``st``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from capedyn.plotting import plot_internal_coupling

    st.header("Steering and internal coupling")
    st.caption("The authors' published internal-coupling measurements and steering runs, as "
               "curated in benchmarks_data/ (the data card lists what is odd in them: "
               "per-layer values constant to seven digits, 'changed' counted as 'corrected').")
    data = published_summary()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    plot_internal_coupling(ax=ax)
    st.pyplot(fig)
    plt.close(fig)
    st.dataframe(data["coupling"], hide_index=True)
    st.subheader("Published steering runs")
    st.dataframe(data["runs"], hide_index=True)

    st.subheader("Steer a local model")
    steer, missing = steer_extra()
    if steer is None:
        st.info(missing)
        return
    with st.form("steer"):
        path = st.text_input("Model folder or cached name", key="steer_model")
        prompt = st.text_input("Prompt", key="steer_prompt")
        strength = st.number_input("Strength (0: the direction's raw norm)", value=0.0,
                                   key="steer_strength")
        tokens = st.number_input("New tokens", min_value=1, max_value=200, value=30,
                                 key="steer_tokens")
        go = st.form_submit_button("Steer")
    if not go:
        return
    if not path.strip() or not prompt.strip():
        st.warning("Give a model and a prompt.")
        return
    s = _steerer(st, path.strip())
    out = s.steer(prompt, strength or None, int(tokens))
    st.markdown(f"layer {out.layer} of {s.n_layers}; cosine {out.cosine:+.3f} "
                f"({out.phase}); strength {out.strength:.4g}")
    st.text(f"unsteered: {out.unsteered}\nsteered:   {out.steered}")
    st.caption("changed" if out.changed else "unchanged")


def _steerer(st, path: str):
    @st.cache_resource(show_spinner="Loading the model…")
    def load(p: str):
        from capedyn.steer import Steerer

        return Steerer.from_pretrained(p).fit()

    return load(path)
