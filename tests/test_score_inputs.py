"""What `minicap score` and minicap.metrics.score_corpus do with bad input: one line naming the file
(or the argument) and what to do, exit status 2, never a traceback or a hang.

The last test feeds a few hundred random and mutated files to the command (seeded).
"""
import json
import random

import pytest

from minicap.cli import main
from minicap.errors import MinicapError
from minicap.metrics import score as score_module
from minicap.metrics.score import (MAX_CAPTION_CHARS, MAX_CAPTION_WORDS, read_score_file, score_corpus,
                                   tokenize_corpus)

VALID = {"refs": {"1": ["a dog runs on the grass", "A brown dog running."],
                  "2": ["the digit seven is on the left of the digit two ."],
                  "3": ["two cats sleep on a red sofa", "cats sleeping"]},
         "cands": {"1": "a dog running on grass", "2": "the digit seven is left of the digit two",
                   "3": "a cat sleeps on the sofa"}}


def run_score(path, capsys):
    """(exit status, stderr) of `minicap score PATH`; checks the error contract on the way."""
    status = main(["score", str(path)])
    err = capsys.readouterr().err
    assert status in (0, 2), status
    if status == 2:
        assert err.startswith("minicap: error: ") and err.count("\n") == 1, err
        assert str(path) in err and "Traceback" not in err
    return status, err


@pytest.mark.parametrize("content, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"refs": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + ', "cands": {}}', "nested too deeply"),
    ('{"refs": {"1": ["a dog"]}, "cands": {"1": "a dog"}, "n": ' + "7" * 5000 + "}", "a number with 5,000 digits"),
    ('{"refs": {"1": [' + "7" * 5000 + ']}, "cands": {"1": "a dog"}}', "a number with 5,000 digits"),
    ('{"refs": {"1": ["a dog"]}, "cands": {"1": NaN}}', "contains NaN"),
    ('{"refs": {"1": ["a dog"]}, "cands": {"1": "a dog"}, "x": -Infinity}', "contains -Infinity"),
    ('{"refs": {"1": ["a dog"]}, "cands": {"1": 1e400}}', "too large for a float"),
    ('{"refs": {"1": ["a dog"]}, "cands": {"1": 3}}', "must be one string"),
    ('{"refs": {"1": ["a dog"]}, "cands": {"1": ["a dog"]}}', "must be one string"),
    ('{"refs": {"1": "a dog"}, "cands": {"1": "a dog"}}', "must be a list of strings"),
    ('{"refs": {"1": ["a dog", null]}, "cands": {"1": "a dog"}}', "must be a list of strings"),
    ('{"refs": {"1": ["a dog"]}, "cands": {"1": "a dog", "1": "a cat"}}', "appears twice"),
    ('{"refs": null, "cands": {}}', '"refs" must be an object'),
    ("", "malformed JSON at line 1"),
], ids=["deep-lists", "deep-objects", "long-int", "long-int-in-refs", "nan", "infinity", "1e400",
        "number-caption", "list-caption", "string-refs", "null-ref", "repeated-id", "null-refs", "empty"])
def test_bad_json_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "captions.json"
    path.write_text(content)
    status, err = run_score(path, capsys)
    assert status == 2 and message in err, err


def test_not_utf8_directory_and_bom(tmp_path, capsys):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"refs": {"1": ["caf\xe9"]}, "cands": {"1": "a"}}'.encode("latin-1"))
    status, err = run_score(path, capsys)
    assert status == 2 and "not UTF-8 text (byte 0xe9" in err
    status, err = run_score(tmp_path, capsys)
    assert status == 2 and "is a directory" in err
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(VALID).encode())  # a byte-order mark is fine
    assert run_score(path, capsys)[0] == 0


def test_file_over_the_size_cap_is_refused_before_reading(tmp_path, capsys, monkeypatch):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(VALID))
    monkeypatch.setattr(score_module, "MAX_SCORE_FILE_BYTES", 100)
    status, err = run_score(path, capsys)
    assert status == 2 and f"has {path.stat().st_size:,} bytes" in err and "at most 100 bytes" in err
    with pytest.raises(MinicapError, match="split the images"):
        read_score_file(path, max_bytes=100)


def test_caption_caps(capsys):
    refs = {"1": ["a dog runs"]}
    too_many_words = " ".join(["dog"] * (MAX_CAPTION_WORDS + 1))
    with pytest.raises(MinicapError, match=f"has {MAX_CAPTION_WORDS + 1:,} words"):
        score_corpus(refs, {"1": too_many_words})
    with pytest.raises(MinicapError, match="reference 0 of image '1' has .* characters"):
        score_corpus({"1": ["x" * (MAX_CAPTION_CHARS + 1)]}, {"1": "a dog"})
    # METEOR splits "a-b" into two words: counted as METEOR counts them
    hyphenated = "-".join(["a", "b"] * (MAX_CAPTION_WORDS // 2 + 1))
    assert len(tokenize_corpus(refs, {"1": hyphenated})[2][0]) == 1
    with pytest.raises(MinicapError, match="words; minicap scores captions of at most"):
        score_corpus(refs, {"1": hyphenated + " " + too_many_words[:len(hyphenated)]})


def test_long_ids_are_shortened_in_messages():
    with pytest.raises(MinicapError) as err:
        score_corpus({}, {"x\n" * 10_000: "a dog"})
    assert len(str(err.value)) < 300 and "\n" not in str(err.value)


def test_fuzz_random_and_mutated_files_give_a_score_or_one_line(tmp_path, capsys):
    rng = random.Random(1234)
    valid = json.dumps(VALID).encode()
    path = tmp_path / "fuzz.json"
    statuses = []
    for case in range(300):
        kind = case % 3
        if kind == 0:    # random bytes, biased towards JSON's own characters
            alphabet = b'{}[]":,0123456789.eE-+ \n\\u tfnrNaI' + bytes(range(256))
            data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        elif kind == 1:  # a valid file with a few bytes replaced
            data = bytearray(valid)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:            # a valid file cut, with a slice repeated or deleted
            a, b = sorted(rng.randrange(len(valid) + 1) for _ in range(2))
            data = [valid[:b], valid[:a] + valid[b:], valid[:b] + valid[a:]][rng.randrange(3)]
        path.write_bytes(bytes(data))
        statuses.append(run_score(path, capsys)[0])
    assert statuses.count(2) > 200 and statuses.count(0) > 0  # most are refused, some still score
