"""Figures: everything minicap draws, in one place.

    attention_figure       the captioner's attention map over the image, word by word
    image_grid, save_png   a grid of images (DRAW / alignDRAW samples)
    canvas_animation, save_gif, glimpse_strip
                           DRAW's canvas being drawn, glimpse by glimpse, write windows in red
    save_caption_grid      alignDRAW: each caption above the images drawn for it
    attention_frames       alignDRAW: the canvases with the words the alignment attends to
    save_round_trip_figure the round trip: prompt, drawing, caption read back (green right, red wrong)

Captioner attention maps: location l's weight alpha_l is painted over its grid cell
(encoder.attention_map: each of the L annotation vectors stands for an 8x8-pixel cell of the 60x60
canvas, the pixels nearest its receptive-field centre), so the bright area is the part of the image
the word was predicted from. For hard attention the cell of the location actually looked at is
outlined in red.

Matplotlib is used through its Figure class, not pyplot: drawing never switches a notebook's backend.
"""
from pathlib import Path

import numpy as np


def attention_figure(images, words, alphas, out_path, locations=None, title_size=9):
    """Write a PNG: a row per image, the image then one panel per word.

    images: (N, H, W) in [0, 1]; words: N lists of words; alphas: N arrays (n_i, L), row t the
    attention that predicted words[i][t]; locations: N arrays (n_i,) of looked-at locations, or None.
    """
    from matplotlib.figure import Figure   # no pyplot: draws off screen, leaves the backend alone
    from matplotlib.patches import Rectangle

    from minicap.models.encoder import attention_map, location_cells

    N = len(images)
    size = images.shape[1:3]
    cells = location_cells(size)
    cols = 1 + max(len(w) for w in words)
    fig = Figure(figsize=(1.25 * cols, 1.45 * N))
    axes = fig.subplots(N, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(N):
        axes[i, 0].imshow(images[i], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title("image", fontsize=title_size)
        maps = attention_map(alphas[i], size)                       # (n_i, H, W)
        for t, word in enumerate(words[i]):
            ax = axes[i, t + 1]
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=1)
            ax.imshow(maps[t] / max(maps[t].max(), 1e-12), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
            ax.set_title(word, fontsize=title_size)
            if locations is not None and locations[i] is not None:
                r, c, h, w = cells[int(locations[i][t])]
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), w, h, fill=False, edgecolor="red", linewidth=1.5))
    fig.tight_layout(pad=0.3)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)


def grid_attention_map(alpha, size):
    """alpha (n, L) over a g x g grid of locations (L = g^2, row-major) -> (n, H, W) maps over an image
    of `size` (H, W): each location's weight painted on its cell of the image cut into g x g equal
    cells, then smoothed by bilinear resizing (as the paper's figures upsample the 14 x 14 weights).
    Used for photos, whose CNN features come from outside minicap (VGG's 14 x 14 grid over 224 x 224)."""
    from PIL import Image
    alpha = np.asarray(alpha, dtype=np.float32)
    g = int(round(np.sqrt(alpha.shape[-1])))
    H, W = size
    maps = [np.asarray(Image.fromarray(a.reshape(g, g), mode="F").resize((W, H), Image.BILINEAR))
            for a in alpha.reshape(-1, g * g)]
    return np.array(maps, dtype=np.float32).reshape(alpha.shape[:-1] + (H, W))


def photo_attention_figure(photos, words, alphas, out_path, locations=None, title_size=9):
    """Write a PNG: a row per photo, the photo then one panel per word with its attention over the photo.

    Each word's panel dims the photo where the model did not look and lights it where it did.
    photos: N arrays (H, W, 3) or (H, W) in [0, 1]; words: N lists of words; alphas: N arrays (n_i, L),
    row t the attention that predicted words[i][t], L a square grid; locations: N arrays (n_i,) of the
    looked-at location (hard attention, outlined in red) or None."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    N, cols = len(photos), 1 + max(max(len(w) for w in words), 1)
    fig = Figure(figsize=(1.4 * cols, 1.6 * N))
    axes = fig.subplots(N, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, photo in enumerate(photos):
        cmap = "gray" if photo.ndim == 2 else None
        H, W = photo.shape[:2]
        axes[i, 0].imshow(photo, cmap=cmap, vmin=0, vmax=1)
        axes[i, 0].set_title("image", fontsize=title_size)
        maps = grid_attention_map(alphas[i][:len(words[i])], (H, W))
        g = int(round(np.sqrt(np.shape(alphas[i])[-1])))
        for t, word in enumerate(words[i]):
            ax = axes[i, t + 1]
            m = maps[t] / max(maps[t].max(), 1e-12)
            m = m if photo.ndim == 2 else m[..., None]
            # the photo dimmed where the model did not look, and a white glow where it did (seen on black too)
            ax.imshow(np.clip(0.7 * photo * (0.2 + 0.8 * m) + 0.3 * m, 0, 1), cmap=cmap, vmin=0, vmax=1)
            ax.set_title(word, fontsize=title_size)
            if locations is not None and locations[i] is not None:
                r, c = divmod(int(locations[i][t]), g)
                ax.add_patch(Rectangle((c * W / g - 0.5, r * H / g - 0.5), W / g, H / g, fill=False,
                                       edgecolor="red", linewidth=1.5))
    fig.tight_layout(pad=0.3)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)


def captioned_examples_figure(images, captions, boxes, out_path, title=""):
    """Write a PNG: each image (N, H, W) in [0, 1] under its caption, four to a row. boxes: None, or
    (N, 2, 4) ink boxes (row, col, height, width) of the caption's X (outlined red) and Y (cyan)."""
    import textwrap
    from matplotlib.figure import Figure   # no pyplot: draws off screen, leaves the backend alone
    from matplotlib.patches import Rectangle

    n = len(images)
    cols = min(4, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(2.7 * cols, 3.1 * rows + 0.3))
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(images[k], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        caption = captions[k]  # two balanced lines
        ax.set_title("\n".join(textwrap.wrap(caption, len(caption) // 2 + 6)), fontsize=8)
        if boxes is not None:
            for slot, color in ((0, "red"), (1, "cyan")):
                r, c, h, w = boxes[k, slot]
                if h > 0:
                    ax.add_patch(Rectangle((c - 0.5, r - 0.5), w, h, fill=False, edgecolor=color, lw=1))
    if boxes is not None:
        title += "\nboxes: red = X, the first digit the caption names; cyan = Y, the second"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)


# --- DRAW: sample grids, the canvas being drawn ---
def image_grid(images, cols=None, scale=3, pad=2):
    """Tile images (n, H, W) with values in [0, 1] into one uint8 array (rows, cols) - grey, white ink."""
    images = np.clip(np.asarray(images, dtype=np.float64), 0, 1)
    n, H, W = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    cell_h, cell_w = H * scale + pad, W * scale + pad
    grid = np.full((rows * cell_h + pad, cols * cell_w + pad), 64, dtype=np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        big = np.kron(images[k], np.ones((scale, scale)))
        grid[pad + r * cell_h: pad + r * cell_h + H * scale, pad + c * cell_w: pad + c * cell_w + W * scale] = \
            np.round(255 * big).astype(np.uint8)
    return grid


def window_box(window, k):
    """The write window of image k as a box (left, top, right, bottom) in pixel units, 0-based edges.

    The N filters along x are centred at mu_i = gx + (i - N/2 - 0.5) delta (pixels count from 1, so
    pixel a spans [a - 1, a] in 0-based edge coordinates, centre a - 0.5); each covers one stride, so
    the box spans from mu_1 - delta/2 to mu_N + delta/2.
    """
    N, delta = window["N"], float(window["delta"][k])
    half = (N / 2) * delta
    gx, gy = float(window["gx"][k]) - 0.5, float(window["gy"][k]) - 0.5
    return gx - half, gy - half, gx + half, gy + half


def canvas_animation(history, cols=None, scale=4, pad=2):
    """Frames (PIL images) of the canvases glimpse by glimpse, with each write window outlined in red.

    history: the list generate(..., record=True) returns: per step {"canvas": (n, B, A), "window"}.
    """
    from PIL import Image, ImageDraw

    frames = []
    n, H, W = history[0]["canvas"].shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    for step in history:
        grey = image_grid(step["canvas"], cols=cols, scale=scale, pad=pad)
        frame = Image.fromarray(grey).convert("RGB")
        if step["window"] is not None:
            pen = ImageDraw.Draw(frame)
            for k in range(n):
                r, c = divmod(k, cols)
                x0, y0 = pad + c * (W * scale + pad), pad + r * (H * scale + pad)
                left, top, right, bottom = window_box(step["window"], k)
                box = [x0 + max(left, 0) * scale, y0 + max(top, 0) * scale,
                       x0 + min(right, W) * scale - 1, y0 + min(bottom, H) * scale - 1]
                if box[2] > box[0] and box[3] > box[1]:   # a window wholly off the canvas is not drawn
                    pen.rectangle(box, outline=(255, 40, 40))
        frames.append(frame)
    return frames


def first_samples(history, n):
    """The drawing history (generate(..., record=True)'s list of per-step dicts) of the first n samples."""
    def head(value):
        if isinstance(value, dict):
            return {k: head(v) for k, v in value.items()}
        return value[:n] if np.ndim(value) else value
    return [{k: head(v) for k, v in step.items()} for step in history]


def glimpse_strip(history, n_rows=4, n_cols=8, scale=3, pad=2):
    """One picture of the drawing: a row per sample (the first n_rows), a column per glimpse (n_cols of
    them, evenly spaced, ending with the last) headed by its number t = 1..T, write windows in red.
    Returns a PIL RGB image."""
    from PIL import Image, ImageDraw

    T = len(history)
    steps = sorted({int(round(k)) for k in np.linspace(0, T - 1, min(n_cols, T))})
    columns = canvas_animation(first_samples([history[t] for t in steps], n_rows), cols=1, scale=scale, pad=pad)
    width, height = columns[0].size
    font = _font(12)
    header = font.getbbox("t=16")[3] + 6
    strip = Image.new("RGB", (len(columns) * (width - pad) + pad, height + header), "white")
    pen = ImageDraw.Draw(strip)
    for k, (t, column) in enumerate(zip(steps, columns)):
        strip.paste(column, (k * (width - pad), header))
        label = f"t={t + 1}"
        pen.text((k * (width - pad) + (width - font.getlength(label)) / 2, 2), label, fill="black", font=font)
    return strip


def save_png(grid, path):
    from PIL import Image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)


def save_gif(frames, path, ms_per_frame=150, hold_last_ms=1500):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [ms_per_frame] * (len(frames) - 1) + [hold_last_ms]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)


# --- alignDRAW: captioned grids, the round trip, the alignment over words ---
def _font(size=13):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)   # a scalable font (Pillow >= 10.1 with FreeType)
    except TypeError:
        return ImageFont.load_default()


def stack_images(images, gap=4):
    """PIL images one above the other, on white."""
    from PIL import Image
    width, height = max(im.width for im in images), sum(im.height for im in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (width, height), "white")
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height + gap
    return out


def _label(text, width, font, height=None):
    from PIL import Image, ImageDraw
    height = height or font.getbbox("Ag")[3] + 8
    strip = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(strip).text((4, 4), text, fill="black", font=font)
    return strip


def _pad_to(image, width):
    from PIL import Image
    out = Image.new("RGB", (width, image.height), "white")
    out.paste(image, (0, 0))
    return out


def save_caption_grid(rows, path, cols=8, scale=2):
    """A PNG with each caption written above its images: rows = [(caption, images (n, H, W) in [0, 1])]."""
    from PIL import Image
    font = _font()
    grids = [Image.fromarray(image_grid(images, cols=min(cols, len(images)), scale=scale)).convert("RGB")
             for _, images in rows]
    width = max(max(g.width for g in grids), 8 + int(max(font.getlength(c) for c, _ in rows)))
    page = stack_images([stack_images([_label(caption, width, font), _pad_to(grid, width)], gap=0)
                   for (caption, _), grid in zip(rows, grids)], gap=6)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path)


def save_round_trip_figure(rows, path, cols=4):
    """The round trip as a picture: rows = [(split, prompt, caption read back, correct, image (60, 60))];
    each drawing with its prompt above and the captioner's reading below (green right, red wrong)."""
    import textwrap
    from matplotlib.figure import Figure   # no pyplot: draws off screen, leaves the backend alone
    n_rows = -(-len(rows) // cols)
    fig = Figure(figsize=(2.6 * cols, 3.4 * n_rows))
    axes = fig.subplots(n_rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (split, prompt, caption, correct, image) in zip(axes.ravel(), rows):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(textwrap.fill(f"{split}: {prompt.rstrip(' .')}", 34), fontsize=8)
        ax.text(0.5, -0.03, textwrap.fill(f"read back: {caption}", 34), transform=ax.transAxes, ha="center",
                va="top", fontsize=8, color="green" if correct else "red")
    fig.subplots_adjust(left=0.02, right=0.98, top=0.96, bottom=0.04, wspace=0.08, hspace=0.55)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def attention_frames(history, tokens, scale=3):
    """One frame per step: the canvases (write windows in red, canvas_animation above) above the
    caption, each word shaded red by its alignment weight (the mean over the images), and the two most
    attended words named. history: aligndraw.generate(..., record=True)'s list."""
    from PIL import ImageDraw
    n = history[0]["canvas"].shape[0]
    canvases = canvas_animation(history, cols=min(n, 8), scale=scale)
    font, small = _font(13), _font(11)
    frames = []
    for t, (canvas, step) in enumerate(zip(canvases, history)):
        width = max(canvas.width, 8 + int(font.getlength(" ".join(tokens))) + 4 * len(tokens))
        strip = _label("", width, font, height=44)
        pen = ImageDraw.Draw(strip)
        if step["alpha"] is not None:
            weights = step["alpha"].mean(axis=0)[:len(tokens)]
            x = 4
            for j, word in enumerate(tokens):
                shade = int(255 * (1 - weights[j] / max(weights.max(), 1e-12)))
                w = int(font.getlength(word))
                pen.rectangle([x - 2, 3, x + w + 2, 20], fill=(255, shade, shade))
                pen.text((x, 4), word, fill="black", font=font)
                x += w + 6
            top = np.argsort(-weights)[:2]
            note = f"step {t + 1}/{len(history)}: most attended " + ", ".join(
                f"'{tokens[j]}' {weights[j]:.2f}" for j in top)
        else:
            pen.text((4, 4), " ".join(tokens), fill="black", font=font)
            note = f"step {t + 1}/{len(history)} (no alignment: the mean of the words)"
        pen.text((4, 25), note, fill=(80, 80, 80), font=small)
        frames.append(stack_images([_pad_to(canvas, width) if canvas.width < width else canvas, strip], gap=0))
    return frames



# --- visual question answering (issue 17) ---------------------------------------------------------
def vqa_attention_figure(image, title, attentions, out_path):
    """Write a PNG for `minicap ask`: the image, then one panel per attention hop (its weights painted
    over the image as in attention_figure). image: (H, W) in [0, 1]; attentions: K arrays (L,)."""
    from matplotlib.figure import Figure   # no pyplot: draws off screen, leaves the backend alone

    from minicap.models.encoder import attention_map

    cols = 1 + len(attentions)
    fig = Figure(figsize=(2.2 * cols, 2.9))
    axes = fig.subplots(1, cols, squeeze=False)[0]
    for ax in axes:
        ax.axis("off")
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("image", fontsize=9)
    for k, alpha in enumerate(attentions):
        m = attention_map(np.asarray(alpha), image.shape)
        axes[k + 1].imshow(m / max(m.max(), 1e-12), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
        axes[k + 1].set_title(f"hop {k + 1}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 0.9))   # leave the top tenth to the question
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)
