"""The scratch image encoder of VQA (`minicap train vqa --encoder scratch`): a small CNN trained from the
pixels together with the VQA model, instead of the frozen digit encoder's features.

Why. The frozen encoder (minicap.models.encoder) was trained to tell MNIST digits apart, on grey
images: it has never seen colour and knows no other shapes. A user's own images ("what colour is the
square ?") need features learned for their questions, so this CNN learns them, from the VQA loss.

The network, B blocks (B = len(channels); channels-last shapes, see minicap.nn.conv):

    x_0 = the image, (N, S, S, C_0) in [0, 1]          C_0 = 3 (rgb) or 1 (grey)
    x_b = maxpool_2x2(relu(conv_3x3(x_{b-1}; W_b, b_b)))     pad 1, stride 1; the pool halves the size
    a   = x_B reshaped to (N, L, D)                     L = G*G regions (row-major), D = channels[-1]

which is the (N, L, D) annotation layout every VQA model takes (minicap.models.vqa). On 60x60 images
three blocks give 60 -> 30 -> 15 -> 7: L = 49 regions, the frozen encoder's 7x7 grid. The models'
position embeddings P[i] (one per region) let a question about where find its regions here too.

Training. The CNN's weights live in the VQA params dict (pixel_conv{b}_w (3, 3, C_{b-1}, C_b),
pixel_conv{b}_b (C_b,)), so the one optimizer, gradient clipping and checkpoint cover both. The
gradient flows

    loss -> vqa.backward(..., features_grad=True) -> dL/da (N, L, D) -> reshape (N, G, G, D)
         -> per block, last first: max_pool_backward, relu_backward, conv2d_backward -> dL/dW_b, dL/db_b

(no gradient is needed for the image itself). The features are used as they come: feature_scale = 1
(the frozen encoder's features are rescaled to unit size because they are fixed; these learn their size).

Shapes: N batch, S image size, G the last grid size, L = G*G regions, D = channels[-1].
"""
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from minicap import backend
from minicap.errors import MinicapError
from minicap.models import vqa
from minicap.nn import relu_backward, relu_forward
from minicap.nn.conv import conv_output_size
from minicap.nn.temporal import log_softmax
from minicap.optim import cosine_lr

COLORS = ("rgb", "grey")
PREFIX = "pixel_conv"


@dataclass
class PixelConfig:
    """The scratch encoder (saved in the checkpoint beside the VQAConfig)."""
    channels: tuple = (16, 32, 64)   # filters of each conv3x3 + ReLU + maxpool block
    color: str = "rgb"               # "rgb": (N, S, S, 3) images; "grey": (N, S, S)
    image_size: int = 60             # S

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        if self.color not in COLORS:
            raise ValueError(f"color must be one of {COLORS}, got {self.color!r}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be one or more positive numbers, got {self.channels}")
        if self.grid < 1:
            raise ValueError(f"{len(self.channels)} pooling blocks leave nothing of a {self.image_size}x"
                             f"{self.image_size} image; use fewer blocks or larger images")

    @property
    def in_channels(self):
        return 3 if self.color == "rgb" else 1

    @property
    def grid(self):
        """G: the side of the last block's grid (each 2x2 pool floors an odd size)."""
        size = self.image_size
        for _ in self.channels:
            size = conv_output_size(size, 2, 2)
        return size

    @property
    def locations(self):
        return self.grid ** 2

    @property
    def feature_size(self):
        return self.channels[-1]

    def image_shape(self):
        """The shape of one image the encoder reads."""
        S = self.image_size
        return (S, S, 3) if self.color == "rgb" else (S, S)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def init_params(config, pixel_config, rng, dtype=np.float32):
    """The VQA model's parameters (vqa.init_params, drawn first, so they are those of the same model on
    frozen features) and the CNN's: He-initialised weights (std sqrt(2 / fan_in), for ReLU), zero biases."""
    params = vqa.init_params(config, rng, dtype)
    c_in = pixel_config.in_channels
    for b, c_out in enumerate(pixel_config.channels, start=1):
        params[f"{PREFIX}{b}_w"] = (rng.standard_normal((3, 3, c_in, c_out)) * math.sqrt(2 / (9 * c_in))).astype(dtype)
        params[f"{PREFIX}{b}_b"] = np.zeros(c_out, dtype)
        c_in = c_out
    return params


def check_images(images, pixel_config):
    """MinicapError unless images is a stack of the encoder's images: (N, S, S, 3) for rgb, (N, S, S) for grey."""
    want = pixel_config.image_shape()
    shape = np.shape(images)
    if shape[1:] != want:
        kind = "RGB" if pixel_config.color == "rgb" else "grey"
        raise MinicapError(f"the scratch encoder reads {want[0]}x{want[1]} {kind} images, arrays of shape "
                           f"(N, {', '.join(map(str, want))}); got shape {shape}")


def _as_input(images, dtype):
    """uint8 0-255 (how datasets keep them) or floats in [0, 1] -> (N, S, S, C) of dtype in [0, 1]."""
    x = np.asarray(images).astype(dtype)
    if np.asarray(images).dtype == np.uint8:
        x /= 255
    return x if x.ndim == 4 else x[..., None]


def encoder_forward(params, images, pixel_config):
    """images (N, S, S[, 3]) -> annotation vectors a (N, L, D) and the cache for encoder_backward."""
    check_images(images, pixel_config)
    conv, pool = backend.get("conv2d_forward"), backend.get("max_pool_forward")
    x = _as_input(images, params[f"{PREFIX}1_w"].dtype)
    caches = []
    for b in range(1, len(pixel_config.channels) + 1):
        x, conv_cache = conv(x, params[f"{PREFIX}{b}_w"], params[f"{PREFIX}{b}_b"], stride=1, pad=1)
        x, relu_cache = relu_forward(x)
        x, pool_cache = pool(x, size=2, stride=2)
        caches.append((conv_cache, relu_cache, pool_cache))
    N, G, _, D = x.shape
    return x.reshape(N, G * G, D), (caches, x.shape)


def encoder_backward(dfeatures, cache, grads):
    """dfeatures (N, L, D) = dL/da. Adds dL/dW_b, dL/db_b of every block to grads."""
    conv_back, pool_back = backend.get("conv2d_backward"), backend.get("max_pool_backward")
    caches, shape = cache
    dx = np.ascontiguousarray(dfeatures).reshape(shape)
    for b in range(len(caches), 0, -1):
        conv_cache, relu_cache, pool_cache = caches[b - 1]
        dx = relu_backward(pool_back(dx, pool_cache), relu_cache)
        dx, grads[f"{PREFIX}{b}_w"], grads[f"{PREFIX}{b}_b"] = conv_back(dx, conv_cache)
    return grads


def forward(params, images, tokens, config, pixel_config):
    """vqa.forward on the CNN's regions: logits (N, C), the attention of every hop, the cache."""
    feats, enc_cache = encoder_forward(params, images, pixel_config)
    logits, attentions, cache = vqa.forward(params, feats, tokens, config)
    return logits, attentions, (cache, enc_cache)


def loss(params, batch, rng=None, config=None, pixel_config=None):
    """Mean cross-entropy of the answers, and the gradients of the VQA model's and the CNN's parameters.
    batch: {"images": (N, S, S[, 3]), "tokens": (N, T), "answers": (N,)}. rng is unused."""
    logits, _, (cache, enc_cache) = forward(params, batch["images"], batch["tokens"], config, pixel_config)
    logp = log_softmax(logits)
    N = len(logits)
    y = batch["answers"]
    value = -float(logp[np.arange(N), y].mean())
    dlogits = np.exp(logp)
    dlogits[np.arange(N), y] -= 1
    grads, dfeatures = vqa.backward(dlogits / N, cache, params, config, features_grad=True)
    return value, encoder_backward(dfeatures, enc_cache, grads)


def predict(params, images, tokens, config, pixel_config, batch_size=250, image_index=None):
    """Answer probabilities (N, C) and the attention of every hop (K arrays (N, L)), in bounded batches.
    With image_index (N,), images are a dataset's pictures and question n reads images[image_index[n]]
    (each batch's images are gathered only when it runs)."""
    probs, atts = [], []
    index = np.arange(len(tokens)) if image_index is None else image_index
    for start in range(0, len(tokens), batch_size):
        logits, attentions, _ = forward(params, images[index[start:start + batch_size]],
                                        tokens[start:start + batch_size], config, pixel_config)
        probs.append(np.exp(log_softmax(logits)))
        atts.append(attentions)
    hops = [np.concatenate([a[k] for a in atts]) for k in range(len(atts[0]))] if atts else []
    return (np.concatenate(probs) if probs else np.zeros((0, config.n_answers))), hops


def make_train_step(config, pixel_config, pictures, image_index, tokens, answers, batch_size, lr=None, steps=None):
    """train_step(run) -> (loss, grads) for minicap.train.train, like vqa.make_train_step but on pixels.

    pictures: (P, S, S[, 3]) uint8, each image once; image_index: (N,) the picture of each question
    (many questions share a picture, so a dataset keeps each decoded image once). With lr and steps,
    the learning rate follows a cosine from lr down to 0 at `steps` (a function of run.step)."""
    from minicap.data import sample_minibatch

    def train_step(run):
        if lr is not None:
            run.optimizer.lr = cosine_lr(lr, run.step, steps)
        idx = sample_minibatch(len(tokens), batch_size, run.rng)
        batch = {"images": pictures[image_index[idx]], "tokens": tokens[idx], "answers": answers[idx]}
        return loss(run.params, batch, run.rng, config, pixel_config)

    return train_step
