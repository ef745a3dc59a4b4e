"""Where the captioner looked: one panel per generated word, the attention map over the image.

Location l's weight alpha_l is painted over its grid cell (encoder.attention_map: each of the L
annotation vectors stands for an 8x8-pixel cell of the 60x60 canvas, the pixels nearest its
receptive-field centre), so the bright area is the part of the image the word was predicted from.
For hard attention the cell of the location actually looked at is outlined in red.
"""
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
    fig.savefig(out_path, dpi=100)
