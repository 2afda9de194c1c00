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
