"""Memory per device of a run, counted from its shapes: what `scalinglab plan` prints, and checks
against the device before anything runs. Pure Python (no JAX); tests/test_memory.py holds the
count to XLA's own figure (the compiled memory analysis) of the real training step and evaluation.

The training step (training/loop.py) holds on each device, with P the parameters (N_total):
- always: the float32 master weights and AdamW's two moments, 12P bytes (the train state is
  donated: the new state takes the old one's place), the batch (twice: the next one is on its
  way while a step runs) and the validation windows;
- in the backward pass: the float32 gradients, 4P (with microbatches also their float32
  accumulator, 4P; under bf16 also the weights' bf16 copy, 2P); what every layer keeps for it
  (KEPT below; with remat only the layer's input, d_model floats); and then the larger of what
  one layer's backward holds (LAYER, with remat REMAT: it recomputes the layer's forward first,
  and the layer's weight gradients) and the head's (HEAD: the logits, in the compute dtype
  (logit_bytes), their float32 softmax and gradient). These count tokens of one pass on one
  device: microbatch_size (or batch_size) rows over the data-parallel devices, times seq_len;
- in the optimizer's update, once the activations are freed: gradients and updates, 8P.
Evaluation (the validation loss) runs while the train state stays: the validation windows, and
a forward pass of up to 63 of them at once (EVAL_LAYER, EVAL_V) on every device; with few
training rows and a large vocabulary it can take more than the step.

Per-token counts are values of (d_model, d_ff, n_heads x seq_len) width, read off the step's
jaxpr (the scan's stacked residuals) and XLA's buffer assignment. Under bf16 the stream, layer
norms, scores and softmax are float32 (model/transformer.py), the matmuls' inputs and the MLP's
activations bf16 (compute_bytes); but a CPU's XLA computes bf16 in float32 and keeps float32
copies, so there they take float32's bytes (measured), all but the logits the step keeps for
the backward pass: bf16 there too (evaluation's forward pass counts float32 copies, measured).
The seq_len x seq_len scores exist only on XLA's attention path (attention_kind 'xla'); the CPU
kernel and cuDNN keep a row statistic instead. Measured on a CPU's XLA only: the GPU figures
(cuDNN, bf16 buffers) are the same count, untested until tests/test_memory.py runs on a GPU.

The count is the scanned layers' program (job_layers). A CPU runs shallow models' layers
unrolled, and XLA then keeps fewer activations (0.67 and 0.72 of the count on two test shapes): the
estimate bounds them from above, so plan never passes a run that cannot fit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..data.batches import eval_chunks, n_val_windows
from ..model.kernels import ANY_NVIDIA, Attention, Layers, Precision, attention_kind, layer_loop
from .runspec import RunSpec

F32, BF16, INT32 = 4, 2, 4
GIB = 2**30
# Kept by each layer, by attention kind: (float32, compute-dtype) counts. float32: the stream and
# layer norms' inputs (and XLA's scores); compute dtype: matmul inputs, q, k, v, attention output,
# the MLP's (and XLA's probabilities).
KEPT = {Attention.CPU: ((4, 0, 0), (5, 6, 0)), Attention.CUDNN: ((4, 0, 0), (6, 6, 0)), Attention.XLA: ((4, 0, 1), (6, 6, 1))}
LAYER = (4, 3, 3)  # live while one layer's backward runs
REMAT = (13, 4, 4)  # the same with remat, its forward recomputed
HEAD_V, HEAD_D = 2, 4  # float32 vocab_size- and d_model-wide at the head, besides the logits
EVAL_LAYER = (4, 1, 3)  # a layer's forward pass
EVAL_V, EVAL_D = 2, 1  # evaluation's head: logits and softmax


@dataclass(frozen=True)
class Memory:
    """Bytes per device of one run: the parts, each at its largest, and the peaks of the training
    step and of evaluation. A layer's backward and the head's do not run at once, nor do the
    backward pass and the optimizer's update, so a peak is less than the parts' sum."""

    params: int
    """float32 master weights."""
    optimizer: int
    """AdamW's two moments."""
    gradients: int
    """float32 gradients; with microbatches, their accumulator too; under bf16, the weights' copy."""
    activations: int
    """Kept for the backward pass by every layer, and what one layer's backward holds."""
    logits: int
    """The head's: logits, softmax, their gradient (evaluation's forward pass, if larger)."""
    inputs: int
    """Token ids, targets and weights of this batch and the next."""
    validation: int
    """The validation windows (on the devices from the start)."""
    step: int
    """The training step's peak."""
    evaluation: int
    """Evaluation's peak, the train state included."""

    @property
    def total(self) -> int:
        return max(self.step, self.evaluation)


def job_attention(run: RunSpec, platform: str, devices: int, cpu_kernel: bool) -> Attention:
    """The model's attention (model.kernels.attention_kind) on a job's devices; a sweep's GPUs are
    NVIDIA's (the '.[cuda]' install)."""
    device_kind = ANY_NVIDIA if platform == "gpu" else platform
    return attention_kind(platform, device_kind, devices, run.precision, lambda: cpu_kernel, d_head=run.model.d_head)


def job_layers(run: RunSpec, platform: str) -> Layers:
    """How the model runs its layers on a job's platform (model.kernels.layer_loop)."""
    return layer_loop(platform, run.model.n_layers, run.remat)


def per_token(run: RunSpec, counts: tuple[int, int, int], kind: Attention) -> int:
    """Float32 values per token of counts (d_model, d_ff, n_heads x seq_len) wide; the scores
    only on XLA's attention path."""
    m = run.model
    return counts[0] * m.d_model + counts[1] * m.d_ff + counts[2] * m.n_heads * m.seq_len * (kind == Attention.XLA)


def compute_bytes(run: RunSpec, platform: str) -> int:
    """Bytes of a compute-dtype activation: 2 under bf16, but 4 on a CPU (XLA computes bf16 in
    float32 there, and keeps the float32 copies); 4 under fp32."""
    return BF16 if run.precision == Precision.BF16 and platform != "cpu" else F32


def logit_bytes(run: RunSpec) -> int:
    """Bytes of a logit the step keeps: the readout's matmul gives them in the compute dtype, on
    a CPU too (the loss takes them to float32)."""
    return BF16 if run.precision == Precision.BF16 else F32


def estimate(run: RunSpec, platform: str = "cpu", devices: int = 1, cpu_kernel: bool = True) -> Memory:
    """Bytes per device of `run` on `devices` devices of `platform` (cpu, gpu or tpu), its state
    sharded over run.fsdp of them; cpu_kernel: whether the CPU attention kernel builds here."""
    m, P = run.model, -(-run.N_total // run.fsdp)  # the state's share of each device: 1 / fsdp
    kind = job_attention(run, platform, devices, cpu_kernel)
    tokens = -(-(run.microbatch_size or run.batch_size) // devices) * m.seq_len
    # fsdp: the embedding tables and one layer's weights gathered whole while they are used
    gathered = F32 * (run.N_total - run.N + run.N // m.n_layers) if run.fsdp > 1 else 0
    copy = BF16 * P * (run.precision == Precision.BF16)
    gradients = F32 * P * (1 + (run.microbatch_size not in (None, run.batch_size))) + copy + gathered
    if run.remat:
        kept, layer = F32 * m.d_model, per_token(run, REMAT, kind)
    else:
        f32, compute = KEPT[kind]
        kept = F32 * (per_token(run, f32, kind) + 2 * m.n_heads + 4) + compute_bytes(run, platform) * per_token(run, compute, kind)
        layer = per_token(run, LAYER, kind)
    kept *= tokens * m.n_layers
    transient = F32 * tokens * layer + F32 * (run.N - 2 * m.d_model) // m.n_layers  # and the layer's weight gradients
    head = tokens * (m.vocab_size * (logit_bytes(run) + F32 * HEAD_V) + F32 * HEAD_D * m.d_model)
    state, inputs = 3 * F32 * P, 2 * 3 * INT32 * -(-run.batch_size // devices) * m.seq_len
    windows, chunk = validation_windows(run)
    windows, chunk = -(-windows // devices), -(-chunk // devices)  # split over the devices
    validation = 3 * INT32 * windows * m.seq_len
    forward = F32 * chunk * m.seq_len * max(EVAL_V * m.vocab_size + EVAL_D * m.d_model, per_token(run, EVAL_LAYER, kind))
    return Memory(
        params=F32 * P, optimizer=2 * F32 * P, gradients=gradients, activations=kept + transient,
        logits=max(head, forward), inputs=inputs, validation=validation,
        step=state + inputs + validation + max(gradients + kept + max(transient, head), 2 * F32 * P),
        evaluation=state + inputs + validation + copy + forward,
    )  # fmt: skip


def validation_windows(run: RunSpec) -> tuple[int, int]:
    """The validation windows, and how many of them one forward pass takes (data.batches.eval_chunks)."""
    windows = n_val_windows(run.model.seq_len, run.eval.val_tokens)
    return windows, eval_chunks(windows)[1]


def as_gib(memory: Memory) -> dict[str, float]:
    """The parts and the peak in GiB, keyed memory_<part> and memory (the peak)."""
    parts = {f"memory_{f.name}": getattr(memory, f.name) / GIB for f in fields(memory)}
    return {"memory": memory.total / GIB, **parts}
