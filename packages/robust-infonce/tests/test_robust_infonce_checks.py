import pytest
import torch

from papershelf.robust_infonce._checks import check_pair, check_tensor, reduce_loss


@pytest.mark.parametrize(
    ("z1", "z2", "err", "match"),
    [
        ([[1.0]], torch.zeros(2, 2), TypeError, "z1 must be a torch.Tensor"),
        (torch.zeros(2), torch.zeros(2), ValueError, "z1 must be 2-D"),
        (torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2), TypeError, "floating-point"),
        (torch.tensor([[1.0, float("nan")], [0.0, 0.0]]), torch.zeros(2, 2), ValueError, "NaN"),
        (torch.zeros(2, 2), torch.zeros(3, 2), ValueError, "same shape"),
        (torch.zeros(1, 2), torch.zeros(1, 2), ValueError, "N >= 2"),
    ],
)
def test_check_pair_errors_name_the_argument(z1, z2, err, match):
    with pytest.raises(err, match=match):
        check_pair(z1, z2)


def test_check_tensor_and_reduce():
    x = torch.arange(4.0)
    assert check_tensor(x, "x", 1) is x
    assert reduce_loss(x, "mean").item() == 1.5
    assert reduce_loss(x, "sum").item() == 6.0
    assert reduce_loss(x, "none") is x
