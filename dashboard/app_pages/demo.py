"""Demo page for non-specialists: few controls, large pictures, plain-language captions, a short tour."""
from __future__ import annotations

import streamlit as st

from dashboard import menus, plain_words, resources, sections, services, state, widgets
from dashboard.progress import LiveProgress
from saliency_core import ExplainConfig, Explanation

TOUR = (
    ("Pick a picture", "Choose one of the sample photos in the sidebar, or upload your own photo. The computer "
                       "program that recognises objects (the *classifier*) looks at it and guesses what it shows."),
    ("The heat map", "The first picture puts colour over the parts the classifier relied on for its guess: the "
                     "more it relied on a part, the stronger and brighter (more yellow) the colour. Parts that did "
                     "not matter get no colour at all: there you see the photo left as it is."),
    ("Keep only the coloured part", "The second picture keeps only the highlighted (coloured) part and grays out "
                                    "the rest. If the classifier still makes the same guess, the highlight holds the "
                                    "evidence."),
    ("Remove the coloured part", "The third picture removes the highlighted part. If the guess changes, the "
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
    whole = expl.predictions["overlay"]
    top = whole[0]
    second = whole[1] if len(whole) > 1 else None
    probs = expl.label_probabilities
    out = {"overlay": plain_words.confidence(top.name, top.probability, second.name if second else None,
                                             second.probability if second else 0.0)}
    for view in ("masked_in", "masked_out", "infilled"):
        now = expl.predictions[view][0]
        out[view] = plain_words.view_sentence(view, top.name, top.probability, now.name, now.probability,
                                              probs[view][0])
    return out


_tour()
settings = resources.settings()
loaded = sections.load_current_image(image)
if loaded is not None:
    with sections.guard("Explaining the picture"):
        classifier = resources.current_classifier()
        catalog = resources.catalog()
        checkpoints = menus.find_checkpoints(settings.checkpoint_folders)
        name = widgets.default_method(catalog, checkpoints)
        own = menus.checkpoints_for(catalog[name], checkpoints, catalog)
        options = {"checkpoint": str(own[0].path)} if catalog[name].takes_checkpoint and own else {}
        config = ExplainConfig(method=name, method_options=options, labels="top1", infiller="blur")
        with LiveProgress("Looking at the picture") as progress:
            expl = services.run_explanation(image, loaded, config, classifier, resources.method(config),
                                            resources.results(), progress=progress)
        probs = expl.label_probabilities
        top = expl.predictions["overlay"][0]
        captions = _captions(expl)
        unsure = plain_words.unsure(top.probability)
        if unsure:  # the caveat first, then a hedged verdict (no bold headline on an unsure guess)
            st.markdown(captions["overlay"])
            captions["overlay"] = f"Its best guess, \u201c{top.name}\u201d, relied on the coloured part."
        st.markdown(plain_words.verdict(top.name, probs["overlay"][0], probs["masked_in"][0], probs["masked_out"][0],
                                        unsure=unsure))
        sections.views_block(expl, key="demo_views", large=True, captions=captions, titles=plain_words.TITLES)
        st.caption(plain_words.how(catalog[name].group) + " The Explain page has the details and other ways of "
                   "making it.")
