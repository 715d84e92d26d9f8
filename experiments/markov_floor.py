"""Can a 5-minute CPU sweep pin E, the loss floor? A corpus whose floor is known says.

Writes a text corpus sampled from an order-k byte Markov chain fitted to the built-in corpus (the
standard library's sources, ASCII only): its entropy rate, the floor E any model can reach, is
the corpus's conditional entropy H(next byte | k bytes before), printed here, and checked against
the sampled chain's own mean -log p. Train a sweep on it (data: {source: text, path: FILE}) and
compare the fitted E with that number.

Found (issue 22, item 3), 4-layer muP widths 16/24/32 fitted, 48 held out, batch 4, WSD branches:
  k = 3 (E = 1.234 nats/byte), D 1M-3.2M, 6m56s: the held-out 111k model reaches 1.68 at 3.2M,
    0.45 above the floor; fit E = 1.248 [1.5e-7, 1.63], B [6.9, 2.4e9]; held-out errors <= 3.1%.
  k = 2 (E = 1.722), D 0.5M-2M, 5m12s: 1.96 at 2M, 0.24 above; fit E = 0.28 [1e-12, 1.95];
    held-out errors <= 1.2%.
At this compute every model is far above even an order-2 chain's floor, so the loss shows no
bend towards E and its interval runs down to 0, whatever the corpus.
Usage: python experiments/markov_floor.py K BYTES OUT   (e.g. 3 12e6 /tmp/markov3.txt; ~10 s)
"""

import sys

import numpy as np

from scalinglab.data.sources import stdlib_files

CHAINS = 2000  # sampled side by side, one numpy step for all: 12 MB in seconds


def sample(k: int, n_bytes: int, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """n_bytes of the order-k chain; its entropy rate, and the sample's mean -log p (nats/byte)."""
    x = np.frombuffer(b"".join(f.read_bytes() for f in stdlib_files()), dtype=np.uint8).astype(np.int64)
    x = x[x < 128]  # ASCII: every sample is valid UTF-8
    context = sum(x[i:len(x) - k + i] << (7 * (k - 1 - i)) for i in range(k))
    pairs, count = np.unique((context << 7) | x[k:], return_counts=True)
    rows, start = np.unique(pairs >> 7, return_index=True)
    total = np.add.reduceat(count, start)
    row_total = np.repeat(total, np.diff(np.append(start, len(pairs))))
    p = count / row_total
    entropy = float(-(count / count.sum() * np.log(p)).sum())
    cum = np.cumsum(count).astype(float)
    rng = np.random.default_rng(seed)
    state, out, nll = context[rng.integers(0, len(context), CHAINS)], [], 0.0
    for _ in range(n_bytes // CHAINS + 1):
        r = np.searchsorted(rows, state)
        dead = (r == len(rows)) | (rows[np.minimum(r, len(rows) - 1)] != state)  # the corpus's last context
        state[dead] = context[rng.integers(0, len(context), dead.sum())]
        r = np.searchsorted(rows, state)
        j = np.searchsorted(cum, cum[start[r]] - count[start[r]] + rng.random(CHAINS) * total[r], side="right")
        nll -= np.log(p[j]).sum()
        out.append(pairs[j] & 127)
        state = ((state << 7) | (pairs[j] & 127)) & ((1 << (7 * k)) - 1)
    return np.stack(out, axis=1).astype(np.uint8).ravel()[:n_bytes], entropy, nll / (len(out) * CHAINS)


def main() -> None:
    k, n_bytes, out = int(sys.argv[1]), int(float(sys.argv[2])), sys.argv[3]
    text, entropy, sampled = sample(k, n_bytes)
    with open(out, "wb") as f:
        f.write(text.tobytes())
    print(f"order {k}: E = {entropy:.4f} nats/byte (the sample's mean -log p: {sampled:.4f}); wrote {len(text):,} bytes to {out}")


if __name__ == "__main__":
    main()
