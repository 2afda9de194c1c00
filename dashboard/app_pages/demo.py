"""Demo page for non-specialists: few controls, large pictures, plain-language captions, a short tour."""
from __future__ import annotations

import streamlit as st

from dashboard import resources, sections, services, state, widgets
from saliency_core import ExplainConfig, Explanation

TOUR = (
    ("Pick a picture", "Choose one of the sample photos in the sidebar, or upload your own photo. The computer "
                       "program that recognises objects (the *classifier*) looks at it and guesses what it shows."),
    ("The heat map", "The first picture colours the photo: bright yellow parts are what the classifier relied "
                     "on for its guess, dark parts mattered little."),
    ("Keep only the bright part", "The second picture keeps only the highlighted part and grays out the rest. "
                                  "If the classifier still makes the same guess, the highlight holds the evidence."),
    ("Remove the bright part", "The third picture removes the highlighted part. If the guess changes, the "
                               "classifier really needed that part."),
    ("Fill the hole", "The last picture fills the removed part with a blur instead of gray, so the picture looks "
                      "more natural to the classifier."),
    ("Go further", "The Explain page lets you choose other methods and labels and shows curves that score the "
                   "explanation; the Compare page puts several methods side by side."),
)

st.title("What does the classifier look at?")
image = state.image_input()


def _tour() -> None:
    step = state.tour_step()
    if step is None:
        st.button("Take the 1-minute tour", key="tour_start", icon=":material/tour:",
                  on_click=state.set_tour_step, args=(0,))
        return
    title, text = TOUR[step]
    with st.container(border=True):
        st.markdown(f"**Tour, step {step + 1} of {len(TOUR)}: {title}**")
        st.markdown(text)
        c1, c2, c3, _ = st.columns([1, 1, 1, 4])
        c1.button("Back", key="tour_back", disabled=step == 0, on_click=state.set_tour_step, args=(max(step - 1, 0),))
        if step + 1 < len(TOUR):
            c2.button("Next", key="tour_next", type="primary", on_click=state.set_tour_step, args=(step + 1,))
        c3.button("End tour", key="tour_end", on_click=state.set_tour_step, args=(None,))


def _captions(expl: Explanation) -> dict[str, str]:
    """Plain-language sentences from the new predictions of each view."""
    top = expl.predictions["original"][0]
    name = top.name
    probs = expl.label_probabilities
    out = {"overlay": f"The classifier says **\u201c{name}\u201d** ({top.probability:.0%} sure). "
                      "The bright part is what it relied on."}
    sentences = {
        "masked_in": ("when it sees only the highlighted part", True),
        "masked_out": ("when the highlighted part is removed", False),
        "infilled": ("when the highlighted part is removed and blurred over", False),
    }
    for view, (when, keep) in sentences.items():
        now = expl.predictions[view][0]
        p = probs[view][0]
        if now.index == top.index:
            text = f"It still says **\u201c{name}\u201d** ({p:.0%}) {when}."
            if not keep:
                text += " Some of the evidence lies outside the highlight."
        else:
            text = (f"It says **\u201c{now.name}\u201d** ({now.probability:.0%}) {when}; "
                    f"\u201c{name}\u201d drops to {p:.0%}.")
        out[view] = text
    return out


_tour()
settings = resources.settings()
loaded = sections.load_current_image(image)
if loaded is not None:
    with sections.guard("Explaining the picture"):
        classifier = resources.current_classifier()
        catalog = resources.catalog()
        checkpoints = services.find_checkpoints(settings.checkpoint_folders)
        name = widgets.default_method(catalog, checkpoints)
        own = services.checkpoints_for(catalog[name], checkpoints, catalog)
        options = {"checkpoint": str(own[0].path)} if catalog[name].takes_checkpoint and own else {}
        config = ExplainConfig(method=name, method_options=options, labels="top1", infiller="blur")
        with sections.LiveProgress("Looking at the picture") as progress:
            expl = services.run_explanation(image, loaded, config, classifier, resources.method(config),
                                            resources.results(), progress=progress)
        sections.views_block(expl, key="demo_views", large=True, captions=_captions(expl))
        st.caption(f"Explained by the method \u201c{name}\u201d. See the Explain page for details and other methods.")
