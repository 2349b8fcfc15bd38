"""The quick demo's data and scorers: real clips score 1, shuffled prompts chance, noise 0."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from papershelf.moviegen.data import ALL_SHAPES, DIRECTIONS, MovingShapes, shape_mask
from papershelf.moviegen.eval import colour_accuracy, motion_consistency, shape_scores
from papershelf.moviegen.reproduce import FULL, QUICK


def _scores(data, video, labels):
    kw = dict(min_speed=data.speed / 2, max_ortho=0.375 * data.speed)
    return (
        colour_accuracy(video, [lb[0] for lb in labels]),
        motion_consistency(video, [lb[2] for lb in labels], **kw)["direction_accuracy"],
        shape_scores(video, [lb[1] for lb in labels], data.object_size, data.shapes)[
            "shape_accuracy"
        ],
    )


@pytest.mark.parametrize("hp", [QUICK, FULL], ids=["quick", "full"])
def test_scorers_ceiling_chance_and_noise_on_the_demo_data(hp):
    data = MovingShapes(**hp["data"])
    g = torch.Generator().manual_seed(0)
    video, _, labels = data.batch(256, generator=g)
    assert _scores(data, video, labels) == (1.0, 1.0, 1.0)  # the ceiling
    perm = torch.randperm(256, generator=g).tolist()
    shuffled = _scores(data, video, [labels[i] for i in perm])
    chance = (0.25, 0.25, 1 / len(data.shapes))
    for got, c in zip(shuffled, chance):
        assert abs(got - c) < 0.1, (shuffled, chance)
    noise = torch.rand(video.shape, generator=g) * 2 - 1
    _, direction, shape = _scores(data, noise, labels)
    assert direction == 0.0 and shape == 0.0


def test_each_wrong_label_is_scored_wrong():
    data = MovingShapes(**QUICK["data"])
    video, _, labels = data.batch(64, generator=torch.Generator().manual_seed(1))
    other_shape = {s: data.shapes[(data.shapes.index(s) + 1) % 2] for s in data.shapes}
    wrong = [(c, other_shape[s], d) for c, s, d in labels]
    assert _scores(data, video, wrong)[2] == 0.0
    flip = {"left": "right", "right": "left", "up": "down", "down": "up"}
    assert _scores(data, video, [(c, s, flip[d]) for c, s, d in labels])[1] == 0.0


def test_shape_masks_have_their_areas():
    c = torch.tensor([7.5])
    area = {s: int(shape_mask(s, c, c, 8, 16, 16).sum()) for s in ALL_SHAPES}
    assert area["square"] == 64 and area["bar"] == 16 and area["cross"] == 2 * 16 - 4
    assert 48 <= area["disc"] < 64
    with pytest.raises(ValueError, match="shape"):
        shape_mask("star", c, c, 8, 16, 16)


def test_render_matches_the_explicit_square_and_keeps_defaults():
    data = MovingShapes()
    assert data.shapes == ("square", "disc") and data.jitter is None
    clip = data.render("red", "square", "right", 3, 4)
    expect = torch.full((8, 32, 32), False)
    for f in range(8):
        expect[f, 4:12, 3 + 2 * f : 11 + 2 * f] = True
    assert torch.equal(clip[0] > 0, expect) and torch.equal(clip[1] > 0, torch.zeros_like(expect))


@pytest.mark.parametrize("jitter", [0, 1, 3])
def test_jitter_bounds_the_start(jitter):
    data = MovingShapes(num_frames=4, size=16, speed=2, object_size=6, jitter=jitter)
    video, _, labels = data.batch(200, generator=torch.Generator().manual_seed(2))
    fg = video.amax(1)[:, 0] > 0  # first frame
    for b, (_, _, d) in enumerate(labels):
        ys, xs = torch.nonzero(fg[b], as_tuple=True)
        dx, dy = DIRECTIONS[d]
        travel = 6
        span_x, span_y = 16 - 6 - travel * (dx != 0), 16 - 6 - travel * (dy != 0)
        x0 = int(xs.min()) - (travel if dx < 0 else 0)
        y0 = int(ys.min()) - (travel if dy < 0 else 0)
        assert abs(x0 - span_x // 2) <= jitter and abs(y0 - span_y // 2) <= jitter
    starts = {(int(torch.nonzero(fg[b])[0, 0]), labels[b]) for b in range(200)}
    assert len(starts) > (1 if jitter == 0 else 32)


def test_bad_data_and_scorer_arguments():
    with pytest.raises(ValueError, match="shapes"):
        MovingShapes(shapes=("square", "star"))
    with pytest.raises(ValueError, match="shapes"):
        MovingShapes(shapes=())
    with pytest.raises(ValueError, match="jitter"):
        MovingShapes(jitter=-1)
    with pytest.raises(TypeError, match="jitter"):
        MovingShapes(jitter=True)
    with pytest.raises(TypeError, match="object_size"):
        MovingShapes(object_size=6.5)
    video = torch.zeros(2, 3, 4, 16, 16)
    with pytest.raises(ValueError, match="candidates"):
        shape_scores(video, ["square", "cross"], 6, candidates=("square",))
    with pytest.raises(ValueError, match="shapes must be among"):
        shape_scores(video, ["square", "cross"], 6)  # cross is not a default candidate


def test_motion_thresholds_follow_the_speed():
    data = MovingShapes(num_frames=4, size=16, speed=1, object_size=6)
    video, _, labels = data.batch(16, generator=torch.Generator().manual_seed(3))
    dirs = [lb[2] for lb in labels]
    assert motion_consistency(video, dirs, min_speed=0.5)["direction_accuracy"] == 1.0
    assert motion_consistency(video, dirs, min_speed=1.5)["direction_accuracy"] == 0.0


_ODD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-3, 20),
    st.booleans(),
    st.sampled_from([np.int64(6), np.float64(float("nan")), torch.tensor(3), "x", None]),
)
_NAMES = ("size", "height", "width", "object_size", "jitter", "speed", "num_frames",
          "min_speed", "max_ortho", "shapes", "candidates", "cx", "object")  # fmt: skip


def _clear_or(fn, check):
    try:
        out = fn()
    except (ValueError, TypeError) as e:
        msg = str(e)
    else:
        assert check(out)
        return
    assert any(n in msg for n in _NAMES), f"unclear error: {msg!r}"


@settings(derandomize=True, max_examples=15, deadline=None)
@given(value=_ODD, which=st.sampled_from(["size", "object_size", "jitter", "speed", "min_speed"]))
def test_fuzz_demo_data_and_scorers(value, which):
    c = torch.tensor([7.5, float("nan")])
    if which == "size":
        _clear_or(
            lambda: shape_mask("cross", c, c, value, 16, 16),
            lambda m: m.shape == (2, 16, 16) and m.dtype == torch.bool,
        )
    elif which in ("object_size", "jitter", "speed"):

        def make():
            kw = {which: value}
            data = MovingShapes(num_frames=4, size=16, **kw)
            video, _, labels = data.batch(2, generator=torch.Generator().manual_seed(0))
            return shape_scores(video, [lb[1] for lb in labels], data.object_size)

        _clear_or(make, lambda out: 0.0 <= out["shape_accuracy"] <= 1.0)
    else:
        video = torch.rand(2, 3, 4, 8, 8) * 2 - 1
        _clear_or(
            lambda: motion_consistency(video, ["left", "up"], min_speed=value, max_ortho=value),
            lambda out: 0.0 <= out["direction_accuracy"] <= 1.0,
        )
