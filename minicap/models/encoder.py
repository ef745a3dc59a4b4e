"""The image encoder: a small fully convolutional CNN, pretrained as an MNIST digit classifier, whose
last convolutional layer gives the annotation vectors a_1..a_L of Show, Attend and Tell.

Xu et al. take a_i from VGG's conv5_4 (14x14x512 -> L = 196 vectors of D = 512), pretrained on
ImageNet and frozen. minicap does the same at laptop scale (channels-last shapes, see minicap.nn.conv):

    layer   what                                         36x36 square   60x60 canvas
    conv1   3x3 conv, 1 -> 16, pad 1, ReLU                 36x36x16       60x60x16
    pool1   2x2 max-pool, stride 2                         18x18x16       30x30x16
    conv2   3x3 conv, 16 -> 32, pad 1, ReLU                18x18x32       30x30x32
    pool2   2x2 max-pool, stride 2                          9x9x32        15x15x32
    conv3   3x3 conv, 32 -> 64, pad 1, ReLU                 9x9x64        15x15x64
    conv4   3x3 conv, 64 -> 64, pad 1, ReLU                 9x9x64        15x15x64
    pool4   3x3 max-pool, stride 2 (overlapping)            4x4x64         7x7x64   <- annotations
    head    global average pool, affine 64 -> 10 (the classifier only)

On a 60x60 canvas pool4 gives a 7x7 grid: L = 49 annotation vectors of D = 64 numbers. Location
l = (row r, col c) of the grid, l = 7 r + c, has its receptive field centred on canvas point
(8 r + 6, 8 c + 6) and 34 pixels wide: a whole digit (28x28) fits in it, and neighbouring locations
are 8 pixels apart, so a digit covers about 3-4 locations each way. `location_centres`,
`location_boxes` and `location_cells` give these regions in canvas pixels (computed from LAYERS, not
typed in), and `attention_map` paints attention weights onto the canvas.

Why this layer. The captioner attends over L locations at every word, so its cost grows with L;
L = 49 keeps a captioner trainable in minutes, and D = 64 keeps cached features small (12.5 KB per
image in float32). The grid is fine enough to tell the two digits of a captioned-MNIST image apart
(their boxes are 28 pixels apart in every template). The last max-pool (3x3 windows, stride 2, which
cover the 15x15 map exactly) makes each vector nearly the same wherever the digit sits relative to
the 8-pixel grid; with a stride-2 convolution in its place (an 8x8 grid) we measured 97.4% test
accuracy instead of 98.4% after 800 steps, and the location nearest a digit's centre named it 52%
of the time instead of 84%.

Why average pooling in the head. Soft attention reads the image as a weighted MEAN of annotation
vectors. A head trained on the mean over all locations, logits = W^T mean_l(a_l) + b, makes the mean
over a digit's locations readable the same way (`location_logits`; this is a class activation map),
so a captioner attending to a digit's locations gets a vector that already says which digit it is.

Training (see encoder_cli): digits of the TRAIN split only, each pasted at a random offset (0-8
pixels each way) in a 36x36 black square, so the filters learn digits at every position relative to
the 8-pixel grid and surrounded by black, as they appear on the 60x60 canvases. The network is
fully convolutional, so the same weights then run on 60x60 canvases unchanged.
"""
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from minicap import DATA_DIR, backend
from minicap.errors import MinicapError
from minicap.nn import affine_backward, affine_forward, relu_backward, relu_forward
from minicap.nn.conv import conv_output_size, global_avg_pool_backward, global_avg_pool_forward
from minicap.nn.temporal import log_softmax

KIND = "encoder"
# The frozen weights that ship with minicap (data/README.md says how they were trained), and the
# default output folder of `minicap train encoder`, whose encoder.npz a freshly trained encoder exports.
DEFAULT_WEIGHTS = DATA_DIR / "encoder_mnist.npz"
DEFAULT_RUN_DIR = Path("runs/encoder")

# The CNN, layer by layer: (name, kind, kernel, stride, pad). A conv layer is followed by a ReLU; its
# output channels come from the `channels` config (one entry per conv layer).
LAYERS = (
    ("conv1", "conv", 3, 1, 1),
    ("pool1", "pool", 2, 2, 0),
    ("conv2", "conv", 3, 1, 1),
    ("pool2", "pool", 2, 2, 0),
    ("conv3", "conv", 3, 1, 1),
    ("conv4", "conv", 3, 1, 1),
    ("pool4", "pool", 3, 2, 0),
)
DEFAULT_CHANNELS = (16, 32, 64, 64)
N_CLASSES = 10
DIGIT_CANVAS = 36   # training squares: a 28x28 digit at a random offset 0..8 each way
# Images per CNN pass when encoding. Small, so that the im2col matrix a layer writes is still in the
# CPU's cache when the product reads it: conv2's is 0.5 MB per 60x60 image, 133 MB for 256 images.
# Measured (CPU seconds for 1,000 canvases, one thread, two rounds, shared machine at load ~7): batches
# of 256: 1.40 / 1.78 s, 64: 1.22 / 1.07, 32: 1.14 / 0.99, 16: 1.10 / 1.03, 8: 1.12 / 0.99.
ENCODE_BATCH = 32


def conv_layers():
    """The (name, kind, kernel, stride, pad) entries of LAYERS that are convolutions."""
    return [layer for layer in LAYERS if layer[1] == "conv"]


# --- parameters -------------------------------------------------------------------------------------
def init_params(rng, channels=DEFAULT_CHANNELS, dtype=np.float32):
    """He-initialised weights (std sqrt(2 / fan_in), for ReLU), zero biases.

    Returns a flat dict: convK_w (3, 3, C_in, C_out), convK_b (C_out,) for each conv layer, and the
    classifier head_w (D, 10), head_b (10,), D = channels[-1].
    """
    if len(channels) != len(conv_layers()):
        raise ValueError(f"channels needs one entry per conv layer ({len(conv_layers())}), got {channels}")
    params, c_in = {}, 1
    for (name, _, k, _, _), c_out in zip(conv_layers(), channels):
        params[f"{name}_w"] = (rng.standard_normal((k, k, c_in, c_out)) * np.sqrt(2 / (k * k * c_in))).astype(dtype)
        params[f"{name}_b"] = np.zeros(c_out, dtype)
        c_in = c_out
    params["head_w"] = (rng.standard_normal((c_in, N_CLASSES)) * np.sqrt(1 / c_in)).astype(dtype)
    params["head_b"] = np.zeros(N_CLASSES, dtype)
    return params


# --- forward / backward -----------------------------------------------------------------------------
def _as_batch(images, dtype):
    """(N, H, W) images -> (N, H, W, 1) of the parameters' dtype; uint8 images are scaled to [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W) grey levels, got shape {images.shape}")
    x = images.astype(dtype)
    if images.dtype == np.uint8:
        x /= 255
    return x[..., None]


def features_forward(images, params, need_cache=True):
    """Run the convolutional layers: the annotation feature map.

    images: (N, H, W) in [0, 1] (or uint8 0-255). Returns feats: (N, H', W', D) after pool4, and a
    cache for features_backward. On 60x60 canvases H' = W' = 7, D = 64.
    need_cache=False (encoding: no backward pass follows) returns None for the cache and applies each
    ReLU in place instead of keeping its input: the same features, one large temporary less per layer.
    """
    conv, pool = backend.get("conv2d_forward"), backend.get("max_pool_forward")
    x = _as_batch(images, params["conv1_w"].dtype)
    caches = []
    for name, kind, k, stride, pad in LAYERS:
        if kind == "conv":
            x, conv_cache = conv(x, params[f"{name}_w"], params[f"{name}_b"], stride=stride, pad=pad)
            if need_cache:
                x, relu_cache = relu_forward(x)
                caches.append((conv_cache, relu_cache))
            else:
                np.maximum(x, 0, out=x)   # relu_forward without its cache
        else:
            x, pool_cache = pool(x, size=k, stride=stride)
            caches.append(pool_cache)
    return x, (caches if need_cache else None)


def features_backward(dfeats, caches):
    """dfeats: (N, H', W', D). Returns {convK_w, convK_b: gradients} (no image gradient)."""
    conv_back, pool_back = backend.get("conv2d_backward"), backend.get("max_pool_backward")
    grads, dx = {}, dfeats
    for (name, kind, *_), cache in reversed(list(zip(LAYERS, caches))):
        if kind == "conv":
            conv_cache, relu_cache = cache
            dx, grads[f"{name}_w"], grads[f"{name}_b"] = conv_back(relu_backward(dx, relu_cache), conv_cache)
        else:
            dx = pool_back(dx, cache)
    return grads


def logits_forward(images, params):
    """The classifier: features -> global average pool -> affine. Returns logits (N, 10), cache."""
    feats, feat_cache = features_forward(images, params)
    pooled, pool_cache = global_avg_pool_forward(feats)
    logits, head_cache = affine_forward(pooled, params["head_w"], params["head_b"])
    return logits, (feat_cache, pool_cache, head_cache)


def loss(params, batch, rng=None):
    """Mean cross-entropy of the digit classifier and its gradients.

    batch: (images (N, H, W) in [0, 1], labels (N,) ints 0-9). rng is unused (no dropout); it is
    there for the common model signature loss(params, batch, rng) -> (loss, grads).

        p = softmax(logits),  loss = -(1/N) sum_n log p[n, y_n],  dlogits = (p - onehot(y)) / N
    """
    images, labels = batch
    logits, (feat_cache, pool_cache, head_cache) = logits_forward(images, params)
    logp = log_softmax(logits)
    N = len(labels)
    value = -float(logp[np.arange(N), labels].sum()) / N
    dlogits = np.exp(logp)
    dlogits[np.arange(N), labels] -= 1
    dlogits /= N
    dpooled, dW, db = affine_backward(dlogits, head_cache)
    grads = features_backward(global_avg_pool_backward(dpooled, pool_cache), feat_cache)
    grads["head_w"], grads["head_b"] = dW, db
    return value, grads


def predict(params, images, batch_size=500):
    """Predicted digit (N,) for images (N, H, W) of any size the network fits."""
    out = [logits_forward(images[i:i + batch_size], params)[0].argmax(axis=1)
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def location_logits(params, feats):
    """The classifier head applied at each location on its own: feats (N, L, D) -> logits (N, L, 10).

    Average pooling followed by an affine map equals the average of the affine map at each location,
    so each location's logits say what digit the classifier sees around it (a check that the
    annotation vectors carry the digit's identity where the digit is)."""
    return feats @ params["head_w"] + params["head_b"]



def digit_readout_accuracy(params, data, feats=None):
    """How well the annotation vectors of a 60x60 canvas say which digit lies where: for every digit of
    a CaptionedMNIST `data`, the classifier head on the mean of location_logits over the locations whose
    centre lies inside that digit's 28x28 box (what uniform soft attention over the digit would read).
    Returns the fraction of digits named correctly. feats: encode(data.images, params) if already known."""
    feats = encode(data.images, params) if feats is None else feats
    logits = location_logits(params, feats)                                # (N, L, 10)
    centres = location_centres(data.images.shape[1:3])
    hits = total = 0
    for n in range(len(data)):
        for k in range(int(data.n_digits[n])):
            r, c, h, w = data.boxes[n, k]
            inside = (r <= centres[:, 0]) & (centres[:, 0] < r + h) & (c <= centres[:, 1]) & (centres[:, 1] < c + w)
            hits += int(logits[n, inside].mean(axis=0).argmax() == data.digits[n, k])
            total += 1
    return hits / total

# --- training data ----------------------------------------------------------------------------------
def place_digits(digits, offsets, canvas=DIGIT_CANVAS):
    """Paste 28x28 digits into black canvas x canvas squares.

    digits: (N, 28, 28) uint8 or float in [0, 1]; offsets: (N, 2) ints, the top-left corner (row, col),
    each in [0, canvas - 28]. Returns (N, canvas, canvas) float32 in [0, 1].
    """
    digits = np.asarray(digits)
    scale = 255.0 if digits.dtype == np.uint8 else 1.0
    N, h, w = digits.shape
    out = np.zeros((N, canvas, canvas), np.float32)
    for n in range(N):
        r, c = offsets[n]
        out[n, r:r + h, c:c + w] = digits[n] / scale
    return out


def centred_digits(digits, canvas=DIGIT_CANVAS):
    """Digits in the middle of canvas x canvas squares (how held-out digits are tested)."""
    off = (canvas - np.asarray(digits).shape[1]) // 2
    return place_digits(digits, np.full((len(digits), 2), off), canvas)


def random_placement_batch(images, labels, batch_size, rng, canvas=DIGIT_CANVAS):
    """A training batch: batch_size digits drawn with replacement, each at a random offset."""
    idx = rng.integers(0, len(images), batch_size)
    offsets = rng.integers(0, canvas - images.shape[1] + 1, size=(batch_size, 2))
    return place_digits(images[idx], offsets, canvas), labels[idx].astype(np.int64)


# --- locations on the canvas ------------------------------------------------------------------------
def _geometry():
    """Receptive field of one annotation location, from LAYERS: (jump, size, first centre).

    Pixel p covers [p, p+1) on the canvas, so its centre is p + 0.5. Walking up the layers,
        jump  *= stride                              (pixels between neighbouring units)
        size  += (kernel - 1) * jump_before          (receptive-field width)
        first += ((kernel - 1) / 2 - pad) * jump_before   (centre of unit 0)
    """
    jump, size, first = 1, 1, 0.5
    for _, _, k, stride, pad in LAYERS:
        first += ((k - 1) / 2 - pad) * jump
        size += (k - 1) * jump
        jump *= stride
    return jump, size, first


def grid_shape(image_size=60):
    """(H', W'): the annotation grid for square images of image_size pixels (or an (H, W) pair)."""
    h, w = (image_size, image_size) if np.ndim(image_size) == 0 else image_size
    for _, _, k, stride, pad in LAYERS:
        h, w = conv_output_size(h, k, stride, pad), conv_output_size(w, k, stride, pad)
    return h, w


def location_centres(image_size=60):
    """(L, 2) float: the receptive-field centre (row, col) of each location, in canvas pixel units
    (pixel p spans [p, p+1)). Locations are in row-major order, l = r * W' + c, as in encode()."""
    jump, _, first = _geometry()
    gh, gw = grid_shape(image_size)
    rows, cols = np.meshgrid(first + jump * np.arange(gh), first + jump * np.arange(gw), indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1)


def _clip_boxes(top, left, bottom, right, image_size):
    h, w = (image_size, image_size) if np.ndim(image_size) == 0 else image_size
    top, left = np.clip(top, 0, h), np.clip(left, 0, w)
    bottom, right = np.clip(bottom, 0, h), np.clip(right, 0, w)
    return np.stack([top, left, bottom - top, right - left], axis=1).astype(np.int64)


def location_boxes(image_size=60):
    """(L, 4) int: each location's receptive field as (row, col, height, width) in canvas pixels, clipped
    to the image: the pixels that can change that location's annotation vector (34x34 where it fits in
    the canvas). Same box layout as CaptionedMNIST.boxes."""
    _, size, _ = _geometry()
    c = location_centres(image_size)
    top, left = np.round(c[:, 0] - size / 2).astype(int), np.round(c[:, 1] - size / 2).astype(int)
    return _clip_boxes(top, left, top + size, left + size, image_size)


def location_cells(image_size=60):
    """(L, 4) int: the grid cell of each location as (row, col, height, width): the pixels whose nearest
    location centre is this one. The cells tile the image without overlap (8x8 inside, 10 pixels
    wide along the edges of a 60x60 canvas), which makes them the right regions to paint attention weights on."""
    jump, _, first = _geometry()
    gh, gw = grid_shape(image_size)
    h, w = (image_size, image_size) if np.ndim(image_size) == 0 else image_size
    edges_r = np.concatenate([[0], np.round(first + jump * (np.arange(1, gh) - 0.5)), [h]]).astype(int)
    edges_c = np.concatenate([[0], np.round(first + jump * (np.arange(1, gw) - 0.5)), [w]]).astype(int)
    r, c = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    r, c = r.ravel(), c.ravel()
    return _clip_boxes(edges_r[r], edges_c[c], edges_r[r + 1], edges_c[c + 1], image_size)


def attention_map(alpha, image_size=60):
    """Paint attention weights onto the image: alpha (..., L) -> (..., H, W).

    Each location's weight is spread evenly over its cell (location_cells), so the map sums to the
    same total as alpha, and the attention mass inside any pixel box is the map's sum over that box."""
    alpha = np.asarray(alpha)
    h, w = (image_size, image_size) if np.ndim(image_size) == 0 else image_size
    cells = location_cells(image_size)
    if alpha.shape[-1] != len(cells):
        raise ValueError(f"alpha has {alpha.shape[-1]} locations, a {h}x{w} image has {len(cells)}")
    out = np.zeros(alpha.shape[:-1] + (h, w), dtype=np.result_type(alpha.dtype, np.float32))
    for l, (r, c, hh, ww) in enumerate(cells):
        out[..., r:r + hh, c:c + ww] = alpha[..., l, None, None] / (hh * ww)
    return out


# --- frozen encoder: loading, encoding -----------------------------------------------------
def load_encoder(path=None):
    """Frozen encoder parameters from a file written by `minicap train encoder` (encoder.npz, or its
    best.npz/last.npz checkpoints). Default: the shipped data/encoder_mnist.npz.

    Returns a dict of float32 arrays: convK_w, convK_b, head_w, head_b.
    """
    from minicap.checkpoint import check_param_shapes, load_checkpoint
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if path.is_dir():
        path = path / "encoder.npz"
    if not path.exists():
        hint = (" (it ships with the repository; restore it with `git checkout data/encoder_mnist.npz`, "
                "or train one with `minicap train encoder` and pass runs/encoder/encoder.npz)"
                if path == DEFAULT_WEIGHTS else " (train one with `minicap train encoder`)")
        raise MinicapError(f"encoder weights {path} do not exist{hint}")
    ck = load_checkpoint(path, kind=KIND)
    channels = tuple(ck.config.get("channels", DEFAULT_CHANNELS))
    check_param_shapes(path, ck.params, init_params(np.random.default_rng(0), channels))
    return {k: v.astype(np.float32) for k, v in ck.params.items()}


def weights_hash(params):
    """A short hash of the parameter values (which features a cache holds depends on it)."""
    h = hashlib.sha256()
    for name in sorted(params):
        h.update(name.encode())
        h.update(np.ascontiguousarray(params[name], dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def encode(images, params=None, batch_size=ENCODE_BATCH, threads=None):
    """Annotation vectors for a stack of images: (N, H, W) in [0, 1] -> (N, L, D) float32.

    params: encoder weights (default: load_encoder(), the shipped frozen encoder). On 60x60
    captioned-MNIST canvases L = 49 (a 7x7 grid, row-major: l = 7 row + col) and D = 64. Location
    l's pixel region is location_boxes()[l] / location_cells()[l], its centre location_centres()[l].
    batch_size: images run through the CNN at once (ENCODE_BATCH says why it is small).
    threads: batches encoded at once (default backend.kernel_threads(): 1 under the numpy backend).
    The batches are independent, and both NumPy's products and the Numba kernels release Python's
    lock while they run, so plain threads encode them in parallel, the products included (a prange
    inside the kernels would split only the copies). Each batch's numbers are the same as with one
    thread, bit for bit. Measured at 2 threads on the shared 2-core machine (one BLAS thread each,
    2,000 canvases, alternating runs): 5.6 s instead of 8.3-9.1 s at load 5.5-6.3, 7.0-7.2 s instead
    of 10.0 s at load 7-7.4; the same CPU time.
    """
    if params is None:
        params = load_encoder()
    threads = backend.kernel_threads() if threads is None else threads
    images = np.asarray(images)
    gh, gw = grid_shape(images.shape[1:3])
    out = np.empty((len(images), gh * gw, params["conv4_w"].shape[-1]), np.float32)

    def encode_batch(i):   # writes only its own rows of out
        feats, _ = features_forward(images[i:i + batch_size], params, need_cache=False)
        out[i:i + batch_size] = feats.reshape(len(feats), gh * gw, -1)

    starts = range(0, len(images), batch_size)
    if threads <= 1 or len(starts) <= 1:
        for i in starts:
            encode_batch(i)
    else:
        with ThreadPoolExecutor(min(threads, len(starts))) as pool:
            list(pool.map(encode_batch, starts))   # list(): re-raises a batch's exception here
    return out


def classify_digits(images, batch_size=500):
    """The shipped encoder CNN's verdict on 28 x 28 images in [0, 1]: (digit (n,), probability (n,)), or
    None when its weights are not there. A check that samples look like digits to something other than us."""
    try:
        params = load_encoder()
    except MinicapError:
        return None
    images = np.asarray(images, np.float32)
    logits = np.concatenate([logits_forward(centred_digits(images[i:i + batch_size]), params)[0]
                             for i in range(0, len(images), batch_size)])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p.argmax(axis=1), p.max(axis=1)


# --- benchmark workload -----------------------------------------------------------------------------
def bench_conv_encoder(dtype, quick=False):
    """`minicap bench --workload conv_encoder`: forward + backward of the whole CNN (classifier loss, all
    parameter gradients) on a batch of 64 captioned-MNIST canvases of 60x60 (seed 0); quick: 2 of 20x20."""
    from minicap.data import make_captioned_mnist
    N, size = (2, 20) if quick else (64, 60)
    images = make_captioned_mnist("train", n=N, seed=0).images[:, :size, :size].astype(dtype)
    labels = np.arange(N) % N_CLASSES
    params = {k: v.astype(dtype) for k, v in init_params(np.random.default_rng(0)).items()}

    def step():
        value, _ = loss(params, (images, labels))
        return value

    return step
