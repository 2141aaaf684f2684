"""Feature capture for layer-by-layer pruning: sampled input patches X, outputs Y and loss gradients G.

Hooks pick `positions` random output positions per image (seeded) and keep only those rows. Rows are
streamed into Gram sums in blocks of at least BLOCK_ROWS rows (P = X^T X, X^T Y, the classification
term's A^T A), so memory is bounded by the Gram sizes, one block of rows per sum being built and the
sampled Y/G rows, never whole activation maps of many layers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cplitool.toolchain.progress import task
from cplitool.toolchain.prune.plan import Stage


class Stop(Exception):
    """Raised by a hook to end a forward pass once the features it needs are captured."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def conv_out_size(conv: Any, spatial: tuple[int, ...]) -> list[int]:
    k, s, p, d = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    return [(n + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i, n in enumerate(spatial)]


def out_size(layer: Any, x: torch.Tensor) -> list[int]:
    """Output positions per image: a conv's output map, or a linear layer's leading (token) axes."""
    if isinstance(layer, nn.Linear):
        return list(x.shape[1:-1])
    return conv_out_size(layer, tuple(x.shape[2:]))


def layer_positions(layer: Any, x: torch.Tensor, positions: int, gen: torch.Generator) -> torch.Tensor:
    """Sampled output positions for the layer's input x; one row per image where there is only one."""
    size = out_size(layer, x)
    return sample_positions(x.shape[0], size, positions if size else 1, gen)


def in_width(layer: Any) -> int:
    """Input channels of a conv, input features of a linear layer."""
    return int(layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels)


def sample_positions(batch: int, out_size: list[int], positions: int, gen: torch.Generator) -> torch.Tensor:
    """(batch*positions, 1+dims) rows of [image, output coordinates...], uniform with replacement."""
    img = torch.arange(batch).repeat_interleave(positions)
    coords = [torch.randint(0, n, (batch * positions,), generator=gen) for n in out_size]
    return torch.stack([img, *coords], 1)


def gather_patches(x: torch.Tensor, conv: Any, pos: torch.Tensor) -> torch.Tensor:
    """The conv's input patch behind each sampled output position: (rows, C*k), ordered like weight.flatten(1);
    for a linear layer, its input row at the position (channel-last)."""
    if isinstance(conv, nn.Linear):
        return x[tuple(pos.to(x.device).t())]
    if getattr(conv, "padding_mode", "zeros") != "zeros":
        raise ValueError(f"padding_mode {conv.padding_mode!r} is not supported")
    dims = x.dim() - 2
    k, s, p, d = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    pads = [v for i in reversed(range(dims)) for v in (p[i], p[i])]
    xp = F.pad(x, pads).movedim(1, -1)  # (B, *spatial, C)
    rows = pos.shape[0]
    pos = pos.to(x.device)
    index = [pos[:, 0].view(rows, *[1] * dims)]
    for i in range(dims):
        offs = torch.arange(k[i], device=x.device) * d[i]
        shape = [rows] + [k[j] if j == i else 1 for j in range(dims)]
        index.append((pos[:, 1 + i, None] * s[i] + offs).view(shape))
    patches = xp[tuple(index)]  # (rows, *k, C)
    return patches.movedim(-1, 1).reshape(rows, -1)


def gather_rows(y: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Output vectors at the sampled positions: (rows, channels)."""
    pos = pos.to(y.device)
    return y.movedim(1, -1)[tuple(pos.t())]


STRIP = 512  # columns per strip of the symmetric Gram product
BLOCK_ROWS = 4096  # rows per Gram product: large matmuls, one float64 accumulation per block
HOLD_OUT = 5  # every 5th sampled image is also summed apart: the refit's ridge is chosen on it


def symmetric_gram(
    X: torch.Tensor, into: torch.Tensor | None = None, also: Sequence[torch.Tensor] = ()
) -> torch.Tensor:
    """X^T X in float64, computing only the upper strips (about half the multiply-adds). Without `into`: a new
    matrix, mirrored. With `into`: the strips are added to that float64 sum in place (no (d, d) temporary) and
    to every sum in `also` (rows that count in two sums are multiplied once), upper strips only: streaming
    sums mirror once, after their last rows (mirror_upper), not once per block of rows."""
    d = X.shape[1]
    out = torch.zeros(d, d, dtype=torch.float64, device=X.device) if into is None else into
    for a in range(0, d, STRIP):
        strip = (X[:, a : a + STRIP].t() @ X[:, a:]).double()  # rows a:a+STRIP, columns a:
        for sums in (out, *also):
            sums[a : a + STRIP, a:] += strip
    return mirror_upper(out) if into is None else out


def mirror_upper(M: torch.Tensor) -> torch.Tensor:
    """M's lower triangle set from its upper one, in place, strip by strip (the diagonal strips are whole)."""
    d = M.shape[0]
    for a in range(0, d, STRIP):
        b = min(a + STRIP, d)
        M[b:, a:b] = M[a:b, b:].t()
    return M


@dataclass
class StoredRows:
    """The sampled rows themselves, for a refit whose objective couples output channels (solver.refit_cg):
    X (rows, c*k) float32, G (rows, n), b_r = <G_r, Y_r>, and the row's image (classification rows per image)."""

    X: list[torch.Tensor] = field(default_factory=list)
    G: list[torch.Tensor] = field(default_factory=list)
    b: list[torch.Tensor] = field(default_factory=list)
    image: list[torch.Tensor] = field(default_factory=list)


@dataclass
class FewRows:
    """The reconstruction rows themselves while they are at most `cap` (half the patch width): with few sampled
    images the refit works on them (solver.KeptRows), rows^2 per fit instead of the Gram's (c*k)^3. Memory at
    most half of P's (the features' precision, cap = c*k / 2). X (rows, c*k), Y (rows, n), held: which rows
    are held out."""

    cap: int
    X: list[torch.Tensor] = field(default_factory=list)
    Y: list[torch.Tensor] = field(default_factory=list)
    held: list[torch.Tensor] = field(default_factory=list)


def rows_of(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The rows where mask is true; all of them (no copy) without a mask."""
    return values if mask is None else values[mask]


def per_image(values: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Rows summed over each image's sampled positions: (images, ...), images in order of first id."""
    ids, inverse = torch.unique(image.to(values.device), return_inverse=True)
    out = torch.zeros(len(ids), *values.shape[1:], dtype=values.dtype, device=values.device)
    return out.index_add_(0, inverse, values)


@dataclass
class GramSums:
    """Streaming sums that are all the stage solver needs; float64 accumulators, float32 products for float32 features.

    The classification term has one row per sampled position, or with `per_image` one row per image (its
    positions' a_r and b_r summed first; the paper's text allows either)."""

    upper: torch.Tensor  # (ck, ck)  sum_r x_r x_r^T, its upper strips summed as rows arrive (P: the whole)
    XtY: torch.Tensor  # (ck, n)
    yy: torch.Tensor  # (n,)     sum_r Y_rj^2
    AtA: torch.Tensor | None  # (c, c) classification term, a_ri = <G_r, Z_i[r]>
    Atb: torch.Tensor | None  # (c,)   b_r = <G_r, Y_r>
    bb: float = 0.0
    rows: int = 0
    seconds: float = 0.0
    per_image: bool = False
    stored: StoredRows | None = None  # the rows themselves, when a refit needs them
    held: GramSums | None = None  # P, XtY, yy of the held-out images' rows alone (also counted above: added by them)
    few: FewRows | None = None  # the rows, while there are few (dropped once they outnumber its cap)
    mirrored: bool = False  # whether upper's lower triangle is its mirror image (rows added since: no)

    @property
    def P(self) -> torch.Tensor:
        """(ck, ck) sum_r x_r x_r^T, whole: mirrored from the upper strips on the first read after new rows."""
        if not self.mirrored:
            mirror_upper(self.upper)
            self.mirrored = True
        return self.upper

    @classmethod
    def empty(
        cls,
        ck: int,
        c: int,
        n: int,
        grads: bool,
        device: torch.device,
        per_image: bool = False,
        store: bool = False,
        held: bool = False,
        few: bool = True,
        held_classification: bool = False,
    ) -> GramSums:
        """Zero sums; `held`: also sum the rows of every HOLD_OUT-th image apart (for solver.choose_ridge),
        with `held_classification` their classification term too (for gamma_search); `few`: keep the rows
        while they are few (FewRows)."""
        f64 = torch.float64
        return cls(
            torch.zeros(ck, ck, dtype=f64, device=device),
            torch.zeros(ck, n, dtype=f64, device=device),
            torch.zeros(n, dtype=f64, device=device),
            torch.zeros(c, c, dtype=f64, device=device) if grads else None,
            torch.zeros(c, dtype=f64, device=device) if grads else None,
            per_image=per_image,
            stored=StoredRows() if store and grads else None,
            held=cls.empty(ck, c, n, grads and held_classification, device, per_image, few=False) if held else None,
            few=FewRows(ck // 2) if few else None,
        )

    def minus(self, part: GramSums) -> GramSums:
        """These sums without the rows of `part`, a subset of them (the held-out images): every term."""
        cls_term = self.AtA is not None and self.Atb is not None and part.AtA is not None and part.Atb is not None
        return GramSums(
            self.P - part.P,
            self.XtY - part.XtY,
            self.yy - part.yy,
            self.AtA - part.AtA if cls_term else None,  # type: ignore[operator]
            self.Atb - part.Atb if cls_term else None,  # type: ignore[operator]
            self.bb - part.bb if cls_term else 0.0,
            self.rows - part.rows,
            per_image=self.per_image,
            mirrored=True,
        )

    def add(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        G: torch.Tensor | None,
        W: torch.Tensor,
        image: torch.Tensor | None = None,
        into: GramSums | None = None,
    ) -> None:
        """X (rows, c*k), Y and G (rows, n), W (n, c*k) the consumer's weight; `image` (rows,) the image of each
        row, needed with per_image (an image's rows must all arrive in one call). The held-out images' rows are
        multiplied once, by the held sums, which add their products here too (`into`)."""
        start = time.perf_counter()
        dtype = torch.float64 if X.dtype == torch.float64 else torch.float32  # products in the features' precision
        X, Y = X.to(dtype), Y.to(dtype)
        out = None
        if self.held is not None:
            if image is None:
                raise ValueError("held-out sums need each row's image")
            out = (image % HOLD_OUT == HOLD_OUT - 1).to(X.device)
        sums = [self] if into is None else [self, into]
        mine = None if out is None else ~out  # the rows multiplied here (None: all); the held sums take the rest
        Xm, Ym = rows_of(X, mine), rows_of(Y, mine)
        symmetric_gram(Xm, into=self.upper, also=[t.upper for t in sums[1:]])
        for t in sums:
            t.mirrored = False
        XtY, yy = (Xm.t() @ Ym).double(), (Ym * Ym).sum(0).double()
        for t in sums:
            t.XtY += XtY
            t.yy += yy
        if G is not None and self.AtA is not None:
            G = G.to(dtype)
            if self.stored is not None:
                self.stored.X.append(X.float())
                self.stored.G.append(G)
                self.stored.b.append((G * Y).sum(1))
                self.stored.image.append(image if image is not None else torch.arange(X.shape[0]) + self.rows)
            own = mine if self.held is not None and self.held.AtA is not None else None
            image_own = None if image is None else rows_of(image, None if own is None else own.to(image.device))
            self.add_classification(rows_of(X, own), rows_of(Y, own), rows_of(G, own), W, image_own, sums)
        if self.held is not None and out is not None and image is not None and out.any():
            G_out = G[out] if G is not None and self.held.AtA is not None else None
            self.held.add(X[out], Y[out], G_out, W, image[out.to(image.device)], into=self)
        self.rows += X.shape[0]
        if self.few is not None and self.rows > self.few.cap:
            self.few = None  # many rows: the Gram form is the cheaper one
        if self.few is not None:
            self.few.X.append(X)
            self.few.Y.append(Y)
            self.few.held.append(torch.zeros(X.shape[0], dtype=torch.bool, device=X.device) if out is None else out)
        sync(X.device)
        self.seconds += time.perf_counter() - start

    def add_classification(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        G: torch.Tensor,
        W: torch.Tensor,
        image: torch.Tensor | None,
        sums: list[GramSums],
    ) -> None:
        """The classification term's rows a_ri = <G_r, Z_i[r]>, b_r = <G_r, Y_r> (per image with per_image),
        added to every one of `sums`."""
        c = self.AtA.shape[0]  # type: ignore[union-attr]
        A = (X * (G @ W.to(X.dtype))).view(X.shape[0], c, -1).sum(2)
        b = (G * Y).sum(1)
        if self.per_image:
            if image is None:
                raise ValueError("per-image classification rows need each row's image")
            A, b = per_image(A, image), per_image(b, image)
        AtA, Atb, bb = (A.t() @ A).double(), (A.t() @ b).double(), float((b.double() ** 2).sum())
        for t in sums:
            t.AtA += AtA  # type: ignore[operator]
            t.Atb += Atb  # type: ignore[operator]
            t.bb += bb


class RowBlocks:
    """Collects per-batch rows and feeds `grams` in blocks of at least BLOCK_ROWS rows; call `flush()` at the end.
    Rows carry a running image id (batch-local ids from the positions, offset per batch)."""

    def __init__(self, grams: GramSums, W: torch.Tensor) -> None:
        self.grams, self.W = grams, W
        self.parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]] = []
        self.rows = 0
        self.images = 0  # id offset of the next batch's images

    def add(self, X: torch.Tensor, Y: torch.Tensor, G: torch.Tensor | None, pos: torch.Tensor | None = None) -> None:
        """`pos` the rows' sampled positions (first column: the image within its batch); None: one image a row."""
        local = pos[:, 0] if pos is not None else torch.arange(X.shape[0])
        image = local.cpu() + self.images
        self.images = int(image.max()) + 1 if len(image) else self.images
        self.parts.append((X, Y, G, image))
        self.rows += X.shape[0]
        if self.rows >= BLOCK_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.parts:
            return
        start = time.perf_counter()
        Xs, Ys, Gs, images = zip(*self.parts, strict=True)
        X, Y = torch.cat(Xs), torch.cat(Ys)
        G = None if Gs[0] is None else torch.cat(Gs)
        self.parts, self.rows = [], 0
        self.grams.seconds += time.perf_counter() - start
        self.grams.add(X, Y, G, self.W, torch.cat(images))


def weight_2d(conv: Any) -> torch.Tensor:
    w = conv.weight.detach()
    return w.reshape(w.shape[0], -1)


def layer_rows(layer: Any, y: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rows of a layer's output (or its gradient) at the sampled positions: (rows, channels)."""
    return y[tuple(pos.to(y.device).t())] if isinstance(layer, nn.Linear) else gather_rows(y, pos)


def output_rows(conv: Any, y: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Sampled output rows without the bias: what the input channels' weights reconstruct."""
    rows = layer_rows(conv, y, pos)
    bias = getattr(conv, "bias", None)
    return rows - bias.detach() if bias is not None else rows


@dataclass
class Targets:
    """The original network's sampled outputs (and gradients) for one consumer conv, per batch."""

    pos: list[torch.Tensor] = field(default_factory=list)
    Y: list[torch.Tensor] = field(default_factory=list)
    G: list[torch.Tensor] = field(default_factory=list)


@dataclass
class Capture:
    targets: dict[str, Targets]
    lookahead: dict[str, GramSums]  # consumer -> Grams on the original network
    seconds: float  # forward/backward time, Gram time excluded
    gram_seconds: float


def capture_original(
    model: nn.Module,
    stages: list[Stage],
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    positions: int,
    seed: int,
    grads: bool,
    lookahead: set[str],
    device: torch.device,
    lookahead_fraction: float = 1.0,
    per_image: bool = False,
) -> Capture:
    """One pass of the ORIGINAL network: sampled Y (and dCE/dY when `grads`) at every consumer conv, and the
    Gram sums of the consumers named in `lookahead` (for the next-stage look-ahead) over a seeded
    `lookahead_fraction` of the sampled rows (the look-ahead only ranks channels; 1.0 uses every row);
    `per_image`: their classification rows per image."""
    model.eval().to(device)
    convs: dict[str, Any] = {s.consumer: model.get_submodule(s.consumer) for s in stages}
    gen = torch.Generator().manual_seed(seed)
    subsample = torch.Generator().manual_seed(seed + 1)  # its own stream: the sampled positions do not change
    targets = {name: Targets() for name in convs}
    grams: dict[str, GramSums] = {}
    blocks: dict[str, RowBlocks] = {}
    batch: dict[str, dict[str, torch.Tensor]] = {}

    def pre_hook(name: str):
        def hook(conv: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0]
            pos = layer_positions(conv, x, positions, gen)
            batch[name] = {"pos": pos}
            if name in lookahead:
                rows = pos.shape[0]
                sel = torch.arange(rows)
                if lookahead_fraction < 1.0:
                    sel = torch.randperm(rows, generator=subsample)[: max(1, round(lookahead_fraction * rows))]
                batch[name]["sel"] = sel
                batch[name]["X"] = gather_patches(x.detach(), conv, pos[sel])

        return hook

    def fwd_hook(name: str):
        def hook(conv: nn.Module, _inputs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor | None:
            pos = batch[name]["pos"]
            batch[name]["Y"] = output_rows(conv, y.detach(), pos)
            if not grads:
                return None
            src = y if y.requires_grad else y.detach().requires_grad_()  # the first consumer starts the graph
            src.register_hook(lambda g: batch[name].__setitem__("G", layer_rows(conv, g.detach(), pos)))
            return src.clone()  # later in-place ops (ReLU(inplace)) act on the clone

        return hook

    handles = [m.register_forward_pre_hook(pre_hook(n)) for n, m in convs.items()]
    handles += [m.register_forward_hook(fwd_hook(n)) for n, m in convs.items()]
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)  # only activation gradients are needed: backward costs about one forward
    seconds = gram_seconds = 0.0
    try:
        with task("capture + Gram (original network)", len(loader), "batch") as advance:  # type: ignore[arg-type]
            for images, labels in loader:
                start = time.perf_counter()
                batch.clear()
                with torch.set_grad_enabled(grads):
                    logits = model(images.to(device))
                    if grads:
                        F.cross_entropy(logits, labels.to(device), reduction="sum").backward()
                sync(device)
                seconds += time.perf_counter() - start
                for name, t in targets.items():
                    b = batch[name]
                    t.pos.append(b["pos"])
                    t.Y.append(b["Y"])
                    if grads:
                        t.G.append(b["G"])
                    if name in lookahead:
                        if name not in grams:
                            w = weight_2d(convs[name])
                            c = in_width(convs[name])
                            grams[name] = GramSums.empty(w.shape[1], c, w.shape[0], grads, device, per_image)
                            blocks[name] = RowBlocks(grams[name], w)
                        sel = b["sel"].to(b["Y"].device)
                        blocks[name].add(b["X"], b["Y"][sel], b["G"][sel] if grads else None, b["pos"][sel.cpu()])
                advance()
            for rb in blocks.values():
                rb.flush()
    finally:
        for h in handles:
            h.remove()
        for p, r in zip(model.parameters(), requires, strict=True):
            p.requires_grad_(r)
    gram_seconds = sum(g.seconds for g in grams.values())
    return Capture(targets, grams, seconds, gram_seconds)


PreHook = Callable[[nn.Module, tuple[torch.Tensor, ...]], None]


def probe_pass(
    model: nn.Module, hooks: dict[nn.Module, PreHook], input_shape: tuple[int, ...], device: torch.device
) -> None:
    """One forward of a zero image with these pre-hooks on (shapes, call order), removed afterwards."""
    handles = [m.register_forward_pre_hook(h) for m, h in hooks.items()]
    try:
        with torch.no_grad():
            model.eval().to(device)(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()


def prefix_inputs(
    model: nn.Module, consumer: str, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> Generator[torch.Tensor, None, None]:
    """Per batch, the input of `consumer`, running the network from its input (the forward stops there)."""
    conv = model.get_submodule(consumer)
    box: dict[str, torch.Tensor] = {}

    def hook(_conv: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        box["x"] = inputs[0].detach()
        raise Stop

    handle = conv.register_forward_pre_hook(hook)
    model.eval().to(device)
    try:
        with torch.no_grad():
            for images, _labels in loader:
                with contextlib.suppress(Stop):
                    model(images.to(device))
                yield box.pop("x")
    finally:
        handle.remove()


def stage_grams(
    model: nn.Module,
    consumer: str,
    inputs: Iterable[torch.Tensor],
    targets: Targets,
    grads: bool,
    device: torch.device,
    per_image: bool = False,
    store: bool = False,
    held: bool = False,
    held_classification: bool = False,
) -> tuple[GramSums, float]:
    """Gram sums of one stage: X from `inputs` (the consumer's input in the network pruned so far, per
    batch), Y and G from the original network. Returns the sums and the time spent producing X.
    `per_image`: classification rows per image; `store`: keep the rows too (for refit_cg); `held`: sum the
    held-out images apart too (for the ridge search), `held_classification` with their classification
    term (for the gamma search)."""
    conv: Any = model.get_submodule(consumer)
    w = weight_2d(conv)
    grams = GramSums.empty(
        w.shape[1],
        in_width(conv),
        w.shape[0],
        grads,
        device,
        per_image,
        store,
        held,
        held_classification=held_classification,
    )
    blocks = RowBlocks(grams, w)
    seconds = 0.0
    with task(f"capture + Gram {consumer}", len(targets.pos), "batch") as advance:
        start = time.perf_counter()
        for i, x in enumerate(inputs):  # the input time counts from the end of the previous batch
            X = gather_patches(x, conv, targets.pos[i])
            sync(device)
            seconds += time.perf_counter() - start
            blocks.add(X, targets.Y[i], targets.G[i] if grads else None, targets.pos[i])
            advance()
            start = time.perf_counter()
        blocks.flush()
    return grams, seconds


def group_grams(
    model: nn.Module,
    targets: dict[str, Targets],
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    grads: bool,
    device: torch.device,
    held: bool = False,
    forward: Callable[[int], None] | None = None,
) -> tuple[dict[str, GramSums], float]:
    """Gram sums of every consumer of one coupled group from one pass per batch of the network as pruned
    so far (X), with Y and G from the original network; the pass stops once every consumer has its input.
    Returns the sums and the time spent producing X. `held`: as in stage_grams; `forward(i)`: how to run batch
    i up to the consumers (block_inputs.py: from kept activations; the loader is not read), by default the
    whole network on the loader's batch i."""
    layers: dict[str, Any] = {n: model.get_submodule(n) for n in targets}
    blocks: dict[str, RowBlocks] = {}
    grams: dict[str, GramSums] = {}
    for name, layer in layers.items():
        w = weight_2d(layer)
        grams[name] = GramSums.empty(w.shape[1], in_width(layer), w.shape[0], grads, device, held=held)
        blocks[name] = RowBlocks(grams[name], w)
    box: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def pre(_layer: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            box[name] = inputs[0].detach()
            if len(box) == len(layers):
                raise Stop

        return pre

    handles = [layer.register_forward_pre_hook(hook(n)) for n, layer in layers.items()]
    model.eval().to(device)
    seconds = 0.0
    try:
        count = len(next(iter(targets.values())).pos)
        batches = enumerate(loader) if forward is None else ((i, None) for i in range(count))
        with torch.no_grad(), task("capture + Gram", count, "batch") as advance:
            for i, batch in batches:
                start = time.perf_counter()
                box.clear()
                if batch is None:
                    forward(i)  # type: ignore[misc]
                else:
                    with contextlib.suppress(Stop):
                        model(batch[0].to(device))
                patches = {n: gather_patches(box[n], layers[n], t.pos[i]) for n, t in targets.items()}
                sync(device)
                seconds += time.perf_counter() - start
                for n, t in targets.items():
                    blocks[n].add(patches.pop(n), t.Y[i], t.G[i] if grads else None, t.pos[i])
                advance()
        for b in blocks.values():
            b.flush()
    finally:
        for h in handles:
            h.remove()
    return grams, seconds
