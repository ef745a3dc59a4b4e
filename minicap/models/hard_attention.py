"""Hard (stochastic) attention of Show, Attend and Tell (Xu et al. 2015, section 4.1), trained with REINFORCE.

At every step the model looks at ONE location: s_t ~ Multinoulli(alpha_t), z_t = beta_t a_{s_t}
(the decoder is captioner.py's; only the glimpse differs). Sampling has no gradient, so the model
maximises a lower bound on log p(y | a):

    L_s = sum_s p(s | a) log p(y | s, a)  <=  log sum_s p(s | a) p(y | s, a) = log p(y | a)

whose gradient is an expectation over location sequences s, estimated from one sample per caption:

    dL_s/dW ~= d log p(y|s,a)/dW  +  lambda_r (log p(y|s,a) - b) d log p(s|a)/dW  +  lambda_e dH[alpha]/dW

    log p(s|a) = sum_t m_t log alpha_t[s_t]       (the REINFORCE term, the only way alpha learns)
    b <- 0.9 b + 0.1 log p(y|s,a)                 (moving-average baseline: lowers the variance)
    H[alpha]   = -sum_t m_t sum_i alpha_ti log alpha_ti   (entropy bonus: keeps exploring)

where m_t is 1 for the caption's real steps and 0 for padding: a padded step emits no word, so its
glimpse is neither rewarded nor kept exploring (log p(y|s,a) sums over the real steps too).

and with probability 1 - sample_prob a whole minibatch uses the expected context instead (the soft
model's z_t), as in the paper. The loss we minimise is the negative, averaged over the batch. Its
"surrogate", whose gradient is the estimate above (R = log p(y|s,a) - b is held constant):

    surrogate = -(1/N) sum_n [log p(y_n|s_n) + lambda_r R_n log p(s_n) + lambda_e H_n]  (+ lambda * penalty)

With lambda_r = 1 and lambda_e = 0 the estimate is unbiased for -dL_s/dW, whatever b is: the tests
check the average of many samples against the exact gradient of L_s, which `expected_log_likelihood`
computes by enumerating every location sequence of a tiny model.
"""
import itertools

import numpy as np

from minicap.models import captioner

TINY = 1e-30  # keeps log(alpha) finite where a float32 alpha underflowed to 0


def reinforce_dalphas(alphas, locations, logp_caption, baseline, mask, config):
    """d(surrogate)/d alpha for the REINFORCE and entropy terms: (N, T, L).

    alphas: (N, T, L); locations s: (N, T); logp_caption log p(y_n|s_n, a_n): (N,); mask: (N, T).
        -lambda_r R_n d log alpha_t[s_t] / d alpha = -lambda_r R_n onehot(s_t) / alpha_t[s_t]
        -lambda_e dH/d alpha_t                     =  lambda_e (log alpha_t + 1)
    each divided by N and zero at padded steps. (The softmax backward turns the first into
    -lambda_r R_n (onehot(s_t) - alpha_t) on the scores.)
    """
    N, T, L = alphas.shape
    m = mask.astype(alphas.dtype)
    reward = (logp_caption - baseline).astype(alphas.dtype)                     # (N,)
    d = (config.entropy_weight / N) * m[:, :, None] * (np.log(np.maximum(alphas, TINY)) + 1)
    n, t = np.meshgrid(np.arange(N), np.arange(T), indexing="ij")
    picked = alphas[n, t, locations]
    d[n, t, locations] -= (config.reward_weight / N) * reward[:, None] * m / picked
    return d


def forward_backward(params, batch, rng, config, baseline=None):
    """One training step's loss and gradient estimate for the hard model.

    batch: {"features": (N, L, D), "captions": (N, T+1)}, optionally "locations": (N, T) to force s
    (then the minibatch always samples). baseline: the moving average b (None: use this minibatch's
    mean log p(y|s,a), so the first step has zero mean reward).
    Returns loss, grads, info; info["sampled"] says whether locations were sampled, and then
    info["logp_caption"] (N,) holds log p(y|s,a) for the baseline update.
    The reported loss is the cross-entropy (+ penalty) of the glimpses used, not the surrogate.
    """
    features, captions = batch["features"], batch["captions"]
    forced = batch.get("locations")
    sampled = forced is not None or rng.random() < config.sample_prob
    if not sampled:
        value, grads, info = captioner.loss_and_grads(params, config, features, captions, rng, train=True)
        return value, grads, dict(info, sampled=False)
    mask = captioner.caption_mask(captions)

    def dalphas(alphas, locations, logp_caption):
        b = float(np.mean(logp_caption)) if baseline is None else baseline
        return reinforce_dalphas(alphas, locations, logp_caption, b, mask, config)

    value, grads, info = captioner.loss_and_grads(params, config, features, captions, rng, train=True,
                                                  glimpse="sample", locations=forced, dalphas_extra=dalphas)
    return value, grads, dict(info, sampled=True)


def loss(params, batch, rng, config, baseline=None):
    """(loss, grads) for the common model signature; see forward_backward."""
    value, grads, _ = forward_backward(params, batch, rng, config, baseline)
    return value, grads


def update_baseline(baseline, logp_caption, decay=0.9):
    """b <- decay b + (1 - decay) mean_n log p(y_n|s_n,a_n); the first minibatch sets b."""
    mean = float(np.mean(logp_caption))
    return mean if baseline is None else decay * baseline + (1 - decay) * mean


def expected_log_likelihood(params, config, features, captions):
    """The exact L_s = (1/N) sum_n sum_s p(s | a_n) log p(y_n | s, a_n), by enumerating all L^T
    location sequences s of every image (only for tiny models: L^T forward passes per image).

    p(s|a) = prod_t alpha_t[s_t] over EVERY step, padded ones included, so the L^T probabilities sum
    to one (a padded step's location changes nothing, so summing over it just marginalises it out).
    No dropout. Its finite-difference gradient is the exact gradient the REINFORCE estimate targets.
    """
    N, L = features.shape[:2]
    T = captions.shape[1] - 1
    seqs = np.array(list(itertools.product(range(L), repeat=T)), dtype=np.int64)   # (L^T, T)
    K = len(seqs)
    feats = np.repeat(features, K, axis=0)
    caps = np.repeat(captions, K, axis=0)
    locs = np.tile(seqs, (N, 1))
    logits, alphas, _, _ = captioner.forward(params, config, feats, caps, glimpse="sample", locations=locs)
    logp_y = captioner.caption_log_likelihood(logits, caps[:, 1:], captioner.caption_mask(caps))
    n, t = np.meshgrid(np.arange(N * K), np.arange(T), indexing="ij")
    logp_s = np.sum(np.log(alphas[n, t, locs]), axis=1)
    return float(np.sum(np.exp(logp_s) * logp_y) / N)
