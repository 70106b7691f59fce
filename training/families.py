"""Transform families in torch: raw localiser output -> parameters -> sampling grid.

The maths mirrors core/geometry.py (the NumPy definition the service uses) and the tests check
the two against each other. Everything here is plain tensor arithmetic with no data-dependent
control flow and no matrix inverse, so it exports to ONNX ops that the CUDA provider implements.
"""

from __future__ import annotations

import torch
from torch import nn

from stn_align.core import geometry


def axis_grid(
    out_hw: tuple[int, int] | torch.Tensor, device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Axis-frame coordinates of output pixel centres, shape (H*W, 2) as (x, y).

    out_hw may be a tensor so that the output size stays dynamic in an exported graph.
    """
    h, w = torch.as_tensor(out_hw[0]), torch.as_tensor(out_hw[1])
    # arange of a 0-d tensor keeps the size dynamic in an exported graph (torch's stubs want int)
    xs = torch.arange(w, device=device).to(dtype)  # type: ignore[call-overload]
    ys = torch.arange(h, device=device).to(dtype)  # type: ignore[call-overload]
    xs, ys = (xs * 2 + 1) / w.to(dtype) - 1, (ys * 2 + 1) / h.to(dtype) - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def iso_scale(hw) -> torch.Tensor:
    """(sx, sy) with iso = axis * (sx, sy): each side over the longer side."""
    h, w = hw[0], hw[1]
    if not isinstance(h, torch.Tensor):
        h, w = torch.tensor(float(h)), torch.tensor(float(w))
    h, w = h.float(), w.float()
    longer = torch.maximum(h, w)
    return torch.stack([w / longer, h / longer])


class Family(nn.Module):
    """Base class. Subclasses set `name` and implement `frame_matrix` (or override `points`)."""

    name = ""

    def __init__(self, tps_grid: int = 4):
        super().__init__()
        self.tps_grid = tps_grid
        self.num_params = geometry.param_count(self.name, tps_grid)

    def identity(self) -> torch.Tensor:
        return torch.from_numpy(geometry.identity_params(self.name, self.tps_grid))

    def params(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw localiser output -> the family's parameters (theta). Identity for most families."""
        return raw

    def frame_matrix(self, theta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def points(self, theta: torch.Tensor, pts: torch.Tensor, in_hw, out_hw) -> torch.Tensor:
        """Map output axis-frame points (M, 2) to input axis-frame points (N, M, 2)."""
        m = self.frame_matrix(theta)  # (N, 3, 3) in the family's frame
        if geometry.frame(self.name) == "iso":
            pts = pts * iso_scale(out_hw).to(pts)
        homog = torch.cat([pts, torch.ones_like(pts[:, :1])], dim=1)  # (M, 3)
        out = torch.einsum("nij,mj->nmi", m, homog)
        xy = out[..., :2] / out[..., 2:3]
        if geometry.frame(self.name) == "iso":
            xy = xy / iso_scale(in_hw).to(xy)
        return xy

    def grid(self, theta: torch.Tensor, in_hw, out_hw) -> torch.Tensor:
        """Sampling grid (N, H_out, W_out, 2) for grid_sample(align_corners=False)."""
        pts = axis_grid(out_hw, device=theta.device, dtype=theta.dtype)
        xy = self.points(theta, pts, in_hw, out_hw)
        return xy.reshape(theta.shape[0], out_hw[0], out_hw[1], 2)


def _rows(*rows: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


class Affine(Family):
    name = "affine"

    def frame_matrix(self, theta):
        bottom = torch.tensor([0.0, 0.0, 1.0], dtype=theta.dtype, device=theta.device)
        return torch.cat([theta.reshape(-1, 2, 3), bottom.expand(theta.shape[0], 1, 3)], dim=1)


class Rotation(Family):
    """theta = (cos a, sin a), a = the content's counter-clockwise angle: the whole circle."""

    name = "rotation"

    def params(self, raw):
        # sqrt(sum(x^2)) rather than norm(): norm exports as ReduceL2, off the CUDA allow-list.
        return raw / (raw * raw).sum(dim=1, keepdim=True).clamp_min(1e-12).sqrt()

    def frame_matrix(self, theta):
        c, s = theta[:, 0], theta[:, 1]
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        return _rows([c, s, zero], [-s, c, zero], [zero, zero, one])


class Similarity(Family):
    name = "similarity"

    def frame_matrix(self, theta):
        a, b, tx, ty = theta.unbind(dim=1)
        zero, one = torch.zeros_like(a), torch.ones_like(a)
        return _rows([a, b, tx], [-b, a, ty], [zero, zero, one])


class Attention(Family):
    name = "attention"

    def frame_matrix(self, theta):
        s, tx, ty = theta.unbind(dim=1)
        zero, one = torch.zeros_like(s), torch.ones_like(s)
        return _rows([s, zero, tx], [zero, s, ty], [zero, zero, one])


class Projective(Family):
    """theta = displacements of the output's four corners in the input (better conditioned than
    raw matrix entries). The homography is built in closed form, as in geometry.square_to_quad."""

    name = "projective"

    def frame_matrix(self, theta):
        corners = torch.from_numpy(geometry.CORNERS).to(theta)
        q = corners + theta.reshape(-1, 4, 2)
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = (q[:, i].unbind(dim=1) for i in range(4))
        sx, sy = x0 - x1 + x2 - x3, y0 - y1 + y2 - y3
        dx1, dx2, dy1, dy2 = x1 - x2, x3 - x2, y1 - y2, y3 - y2
        det = dx1 * dy2 - dx2 * dy1
        g = (sx * dy2 - dx2 * sy) / det
        h = (dx1 * sy - sx * dy1) / det
        one = torch.ones_like(g)
        unit = _rows(
            [x1 - x0 + g * x1, x3 - x0 + h * x3, x0],
            [y1 - y0 + g * y1, y3 - y0 + h * y3, y0],
            [g, h, one],
        )
        to_unit = torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]).to(theta)
        return unit @ to_unit


class ThinPlateSpline(Family):
    """theta = displacements of an n x n grid of control points. L^-1 is solved once, here."""

    name = "tps"

    def __init__(self, tps_grid: int = 4):
        super().__init__(tps_grid)
        self.register_buffer(
            "control", torch.from_numpy(geometry.tps_control_points(tps_grid)), False
        )
        self.register_buffer(
            "inverse_system", torch.from_numpy(geometry.tps_inverse_system(tps_grid)), False
        )

    def points(self, theta, pts, in_hw, out_hw):
        # Buffers stay float64 so double-precision checks are exact; cast to theta's dtype here.
        control = self.control.to(theta)
        target = control + theta.reshape(theta.shape[0], -1, 2)  # (N, p, 2)
        padded = torch.cat([target, target.new_zeros(theta.shape[0], 3, 2)], dim=1)
        coef = self.inverse_system.to(theta) @ padded  # (N, p+3, 2)
        r2 = ((pts[:, None, :] - control[None]) ** 2).sum(-1)
        # U(r) = r^2 log r^2; the clamp keeps log finite and U(0) = 0 exactly.
        u = r2 * torch.log(r2.clamp_min(1e-12))
        basis = torch.cat([u, torch.ones_like(pts[:, :1]), pts], dim=1)  # (M, p+3)
        return torch.einsum("mk,nkd->nmd", basis, coef)


FAMILIES: dict[str, type[Family]] = {
    "affine": Affine,
    "rotation": Rotation,
    "similarity": Similarity,
    "attention": Attention,
    "projective": Projective,
    "tps": ThinPlateSpline,
}


def build_family(name: str, tps_grid: int = 4) -> Family:
    geometry.check_family(name)
    return FAMILIES[name](tps_grid)
