"""The word vocabulary: words <-> integer ids.

Ids 0-3 are reserved:

    0 <NULL>   padding after a caption ends (the embedding layer maps it to zeros, the loss masks it)
    1 <START>  fed to the decoder as the first input
    2 <END>    the decoder's last target; decoding stops when it is produced
    3 <UNK>    any word not in the vocabulary

Then the words that occur at least `min_count` times in the training captions, most frequent
first (ties alphabetical), so the same captions always give the same ids.

Captions are split into words by minicap.text.tokenize, the tokenizer the metrics use (it
lower-cases and drops punctuation, including the final "."). A word that is not in the
vocabulary becomes <UNK> and is counted (pass a collections.Counter to `encode`, or read
`EncodedCaptions.unknown` from minicap.data.batching.encode_captions): never silently dropped.

A vocabulary saves as one array of strings (`to_array`), which an .npz checkpoint stores with
allow_pickle=False, or as JSON (`to_json`).
"""
import json
from collections import Counter

import numpy as np

from minicap.errors import MinicapError
from minicap.text import tokenize

NULL, START, END, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<NULL>", "<START>", "<END>", "<UNK>")


def _tokens(caption):
    """A caption given as a string is tokenized; a list of tokens is taken as it is."""
    return tokenize(caption) if isinstance(caption, str) else list(caption)


class Vocabulary:
    """words: list of every token in id order, starting with the 4 SPECIAL_TOKENS.
    counts: the training-caption word counts it was built from (a Counter), when known.
    """

    def __init__(self, words, counts=None):
        words = list(words)
        if tuple(words[:4]) != SPECIAL_TOKENS:
            raise MinicapError(f"a vocabulary must start with {', '.join(SPECIAL_TOKENS)}; "
                               f"got {words[:4]} (was it saved by another program?)")
        if len(set(words)) != len(words):
            dupes = sorted(w for w, c in Counter(words).items() if c > 1)
            raise MinicapError(f"a vocabulary lists these words twice: {dupes[:10]}")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        self.counts = counts

    @classmethod
    def build(cls, captions, min_count=1):
        """Build from training captions (strings or token lists); keep words seen >= min_count times."""
        if min_count < 1:
            raise MinicapError(f"min_count must be at least 1, got {min_count}")
        counts = Counter()
        for caption in captions:
            counts.update(_tokens(caption))
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)  # a caption that literally says "<unk>" gets no second id
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(list(SPECIAL_TOKENS) + kept, counts)

    def __len__(self):
        return len(self.words)

    def __contains__(self, word):
        return word in self.index

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and self.words == other.words

    def __repr__(self):
        return f"Vocabulary({len(self)} words: {' '.join(self.words[4:12])}{' ...' if len(self) > 12 else ''})"

    def encode(self, caption, unknown=None):
        """Word ids of one caption, without <START>/<END>.

        caption: str (tokenized here) or list of tokens. unknown: optional collections.Counter;
        every word mapped to <UNK> is added to it.
        Returns: list[int].
        """
        ids = []
        for word in _tokens(caption):
            i = self.index.get(word, UNK)
            if i == UNK and unknown is not None:
                unknown[word] += 1
            ids.append(i)
        return ids

    def decode(self, ids, stop_at_end=True):
        """Words of an id sequence joined by spaces.

        Skips <NULL> and <START>; stops at the first <END> (or keeps going if stop_at_end is
        False, skipping it); <UNK> stays visible as "<UNK>".
        """
        words = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i == END and stop_at_end:
                break
            if i in (NULL, START, END):
                continue
            if not 0 <= i < len(self.words):
                raise MinicapError(f"word id {i} is outside this vocabulary of {len(self)} words; "
                                   f"was the model trained with another vocabulary?")
            words.append(self.words[i])
        return " ".join(words)

    # --- saving -------------------------------------------------------------------------------
    def to_array(self):
        """The words as a NumPy unicode array (saves in .npz without pickling)."""
        return np.array(self.words, dtype=str)

    @classmethod
    def from_array(cls, array):
        return cls([str(w) for w in np.asarray(array).tolist()])

    def to_json(self):
        return json.dumps({"words": self.words}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text):
        try:
            words = json.loads(text)["words"]
        except (ValueError, KeyError, TypeError, RecursionError) as err:   # (too deep: RecursionError)
            raise MinicapError(f"not a saved vocabulary (expected JSON {{\"words\": [...]}}): {err}") from None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise MinicapError("not a saved vocabulary: \"words\" must be a list of strings")
        return cls(words)
