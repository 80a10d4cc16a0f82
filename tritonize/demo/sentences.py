"""The sentences ``tritonize demo`` sends to every deployment, with the answer each should give.

One definition for the demo command and its test: a sentence carries one expected answer per
label set (an emotion and a sentiment), and a deployment is expected to answer with the one
that is among its labels (a deployment of other labels is shown its answers, not judged). The demo checkpoints are trained on the built-in corpora so that
these plain sentences get the right answer (they are not in the corpora).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class DemoSentence:
    text: str
    answers: tuple[str, ...]  # the right answer under each label set, e.g. ("joy", "positive")

    def expected(self, labels: tuple[str, ...] | list[str]) -> str | None:
        """The answer among ``labels``; ``None`` for a label set the sentence has no answer in."""
        return next((answer for answer in self.answers if answer in labels), None)


SENTENCES = (
    DemoSentence(text="i am so happy today, everything went right", answers=("joy", "positive")),
    DemoSentence(text="i feel lonely and sad since you left", answers=("sadness", "negative")),
    DemoSentence(text="this makes me furious, how dare they", answers=("anger", "negative")),
    DemoSentence(text="i am scared of what tomorrow brings", answers=("fear", "negative")),
)

