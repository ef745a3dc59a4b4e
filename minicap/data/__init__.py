"""Datasets, vocabulary and loaders.

  mnist             the shipped 5,000 MNIST digits and their fixed train/val/test split; IDX files
  captioned_mnist   the captioned-MNIST generator (Mansimov et al. 2016), caption parsing and checking
  vocab             Vocabulary: words <-> ids with <NULL>, <START>, <END>, <UNK>
  batching          padded caption arrays with masks, minibatch index iterators
  captions          Karpathy-split JSON + features, and folders of images with a captions file
  text_corpus       plain text for the character-level language model
  files             the checks every reader of a user file shares: sizes before allocating, one-line errors
  features          the encoder's annotation vectors, cached on disk (import minicap.data.features)
"""
from minicap.data.batching import EncodedCaptions, encode_captions, iterate_minibatches, sample_minibatch
from minicap.data.captioned_mnist import (DEFAULT_SIZES, DIGIT_WORDS, TEMPLATE_NAMES, TEMPLATES,
                                          CaptionedMNIST, CaptionMeaning, accuracy_by_template, banned_digits,
                                          caption_accuracy, caption_is_correct, make_captioned_mnist,
                                          parse_caption, render_caption)
from minicap.data.captions import CaptionDataset, load_image_folder, load_karpathy_json, read_captions_file
from minicap.data.mnist import load_mnist_5k, load_mnist_idx, mnist_5k_split_indices, read_idx
from minicap.data.text_corpus import TINY_TEXT_PATH, load_text
from minicap.data.vocab import END, NULL, SPECIAL_TOKENS, START, UNK, Vocabulary

__all__ = [
    "EncodedCaptions", "encode_captions", "iterate_minibatches", "sample_minibatch",
    "DEFAULT_SIZES", "DIGIT_WORDS", "TEMPLATE_NAMES", "TEMPLATES", "CaptionedMNIST", "CaptionMeaning",
    "accuracy_by_template", "banned_digits", "caption_accuracy", "caption_is_correct", "make_captioned_mnist",
    "parse_caption", "render_caption",
    "CaptionDataset", "load_image_folder", "load_karpathy_json", "read_captions_file",
    "load_mnist_5k", "load_mnist_idx", "mnist_5k_split_indices", "read_idx",
    "TINY_TEXT_PATH", "load_text",
    "END", "NULL", "SPECIAL_TOKENS", "START", "UNK", "Vocabulary",
]
