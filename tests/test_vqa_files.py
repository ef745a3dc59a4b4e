"""Users' own VQA data (minicap.data.vqa_files): the JSON format, vocabulary and answers from the
training questions, fixed splits, and one-line errors naming the file and the problem."""
import json

import numpy as np
import pytest
from PIL import Image

from minicap.data.vqa_files import load_vqa_json
from minicap.errors import MinicapError


def write(tmp_path, entries, images=("a.png", "b.png")):
    for k, name in enumerate(images):
        Image.fromarray(np.full((20, 30, 3), 40 * k, np.uint8)).save(tmp_path / name)
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"questions": entries}))
    return path


ENTRIES = [{"image": "a.png", "question": "What colour is it?", "answer": "Black", "split": "train"},
           {"image": "b.png", "question": "what colour is it ?", "answer": "grey", "split": "train"},
           {"image": "b.png", "question": "is it purple ?", "answer": "grey", "split": "test"}]


def test_reads_images_vocabulary_and_answers(tmp_path):
    data = load_vqa_json(write(tmp_path, ENTRIES), size=(12, 16), mode="RGB")
    assert data.images.shape == (3, 12, 16, 3) and data.images.dtype == np.uint8 and data.mode == "RGB"
    assert data.vocab == ["<NULL>", "<UNK>", "?", "colour", "is", "it", "what"]   # training words only
    assert data.answer_classes == ["black", "grey"]
    train, test = data.split("train"), data.split("test")
    assert train.tokens.tolist() == [[6, 3, 4, 5, 2], [6, 3, 4, 5, 2]] and train.answers.tolist() == [0, 1]
    assert test.tokens.tolist() == [[4, 5, 1, 2]]       # "purple" is seen only in a test question: <UNK>
    grey = load_vqa_json(write(tmp_path, ENTRIES), size=(12, 16), mode="L")
    assert grey.images.shape == (3, 12, 16)
    with pytest.raises(MinicapError, match="'purple'"):
        data.encode(["is it purple ?"], unknown="error")


def test_split_by_fraction_is_fixed(tmp_path):
    entries = [{"image": "a.png", "question": f"question {i} ?", "answer": "x"} for i in range(200)]
    a = load_vqa_json(write(tmp_path, entries), held_out=0.2).splits
    b = load_vqa_json(write(tmp_path, entries[::-1]), held_out=0.2).splits[::-1]
    assert np.array_equal(a, b) and 20 < (a == 1).sum() < 60 and 20 < (a == 2).sum() < 60


@pytest.mark.parametrize("change,message", [
    (lambda p: p.write_text("{not json"), "q.json"),
    (lambda p: p.write_text(json.dumps({"items": []})), '"questions" list'),
    (lambda p: p.write_text(json.dumps({"questions": [{"image": "a.png", "answer": "x"}]})), 'no "question"'),
    (lambda p: p.write_text(json.dumps({"questions": [{"image": "a.png", "question": " ", "answer": "x"}]})),
     "empty question"),
    (lambda p: p.write_text(json.dumps({"questions": [{"image": "zz.png", "question": "q ?", "answer": "x"}]})),
     "zz.png"),
    (lambda p: p.write_text(json.dumps({"questions": [{"image": "a.png", "question": "q ?", "answer": "x",
                                                       "split": "dev"}]})), "'dev'"),
])
def test_bad_inputs_name_the_file_and_the_problem(tmp_path, change, message):
    path = write(tmp_path, ENTRIES)
    change(path)
    with pytest.raises(MinicapError, match=message):
        load_vqa_json(path)


def test_unknown_answer_at_test_time_is_an_error_naming_it(tmp_path):
    entries = ENTRIES + [{"image": "a.png", "question": "what is it ?", "answer": "a cat", "split": "test"}]
    data = load_vqa_json(write(tmp_path, entries))
    with pytest.raises(MinicapError, match="'a cat'"):
        data.split("test")


def test_an_unreadable_image_is_named(tmp_path):
    path = write(tmp_path, ENTRIES)
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(MinicapError, match="b.png"):
        load_vqa_json(path)


def test_random_bytes_and_byte_flips_give_only_clean_errors(tmp_path):
    """A fuzz test of the reader: a valid file with random bytes flipped, cut short, or replaced by
    noise either loads or fails with one MinicapError line naming the file, never anything else."""
    path = write(tmp_path, ENTRIES)
    good = path.read_bytes()
    rng = np.random.default_rng(0)
    for case in range(200):
        data = bytearray(good)
        kind = case % 3
        if kind == 0:
            for i in rng.integers(0, len(data), size=rng.integers(1, 6)):
                data[i] = int(rng.integers(0, 256))
        elif kind == 1:
            data = data[:int(rng.integers(0, len(data)))]
        else:
            data = bytearray(rng.integers(0, 256, size=int(rng.integers(0, 200))).astype(np.uint8).tobytes())
        path.write_bytes(bytes(data))
        try:
            load_vqa_json(path, size=(12, 16))
        except MinicapError as err:
            assert "\n" not in str(err) and str(path) in str(err), (case, str(err))


def test_each_image_is_kept_once_as_uint8_and_auto_colour_reads_the_pixels(tmp_path):
    path = write(tmp_path, ENTRIES)   # a.png and b.png: grey levels saved as RGB files
    data = load_vqa_json(path, size=(12, 16), mode="auto")
    assert data.mode == "L" and data.pictures.shape == (2, 12, 16) and data.pictures.dtype == np.uint8
    assert data.image_index.tolist() == [0, 1, 1] and data.images.shape == (3, 12, 16)
    assert np.array_equal(data.pictures, load_vqa_json(path, size=(12, 16), mode="L").pictures)
    test = data.split("test")
    assert test.pictures is data.pictures and test.image_index.tolist() == [1] and test.prefix(0).images.shape[0] == 0
    pixels = np.full((20, 30, 3), 40, np.uint8)
    pixels[3, 4] = (40, 41, 40)   # one pixel with a little colour is enough
    Image.fromarray(pixels).save(tmp_path / "b.png")
    colour = load_vqa_json(path, size=(20, 30), mode="auto")
    assert colour.mode == "RGB" and colour.pictures.shape == (2, 20, 30, 3)
    assert colour.pictures[1, 3, 4].tolist() == [40, 41, 40]


def test_the_example_file_hides_colour_from_grey(tmp_path):
    from minicap.data.vqa_files import write_example_file
    path = write_example_file(tmp_path, n_images=30, size=16)
    rgb, grey = load_vqa_json(path, size=(16, 16), mode="auto"), load_vqa_json(path, size=(16, 16), mode="L")
    assert rgb.mode == "RGB" and len(rgb.questions) == 60 and set(rgb.answers_text) <= {
        "red", "green", "blue", "square", "circle"}
    # the brightest grey of each image does not tell its colour: every colour's range overlaps the others
    colour = np.array([a for a, q in zip(rgb.answers_text, rgb.questions) if "colour" in q])
    brightest = grey.pictures.reshape(30, -1).max(axis=1)
    ranges = [(brightest[colour == c].min(), brightest[colour == c].max()) for c in set(colour)]
    assert max(lo for lo, _ in ranges) < min(hi for _, hi in ranges)
