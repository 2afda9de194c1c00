"""The Demo's plain words: an unsure classifier and an explanation that did not work are said plainly."""
from dashboard import plain_words as pw


def test_an_unsure_answer_is_called_unsure():
    text = pw.confidence("keeshond", 0.23, "Siberian husky", 0.17)
    assert "not sure" in text and "23%" in text and "Siberian husky" in text
    assert "not sure" not in pw.confidence("tabby", 0.81, "tiger cat", 0.1)


def test_the_verdict_follows_the_kept_and_removed_probabilities():
    assert "did not work" in pw.verdict("keeshond", 0.23, kept=0.0, removed=0.0)  # the husky photo of the issue
    assert "works here" in pw.verdict("tabby", 0.8, kept=0.7, removed=0.05)
    assert "more than one place" in pw.verdict("tabby", 0.8, kept=0.7, removed=0.6)
    assert "also uses what is around it" in pw.verdict("tabby", 0.8, kept=0.3, removed=0.05)
    assert "misses the evidence" in pw.verdict("tabby", 0.8, kept=0.1, removed=0.7)


def test_no_jargon():
    words = " ".join([*pw.TITLES.values(), pw.verdict("x", 0.5, 0.0, 0.0), pw.confidence("x", 0.2, "y", 0.1),
                      *pw.HOW.values()]).lower()
    for jargon in ("saliency", "masked", "method", "infill", "masker"):
        assert jargon not in words, jargon


def test_the_objectives_are_offered_in_plain_words_and_other_choices_as_they_are():
    from dashboard.help_text import plain_choice

    assert [plain_choice(v) for v in ("ssr", "sdr", "both")] == ["keep the class", "remove the class", "both"]
    assert plain_choice("gray") == "gray" and plain_choice(8) == "8" and plain_choice(None) == "None"


def test_a_fraction_is_a_slider_in_steps_of_one_percent_within_its_bounds():
    from dashboard.widgets import fraction_choices, is_fraction, slider_choices
    from saliency_core import Option

    area = Option("area", "float", 0.1, "", low=0.0, low_open=True, high=0.99, main=True)
    grid = fraction_choices(area)
    assert is_fraction(area) and grid[0] == 0.01 and grid[-1] == 0.99 and len(grid) == 99 and 0.1 in grid
    assert fraction_choices(Option("area", "float", 0.25, "", low=0.05, high=0.6, main=True))[:2] == [0.05, 0.06]
    assert slider_choices(Option("p", "float", 0.5, "", low=0.0, high=0.99)) is None  # not a main option: a box
    assert slider_choices(Option("sigma", "float", 0.25, "", low=0.0, high=10.0, main=True)) is None  # not a fraction
