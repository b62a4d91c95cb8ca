import math

import pytest

from difflab.training.lr_schedule import ONE_CYCLE_START, constant, cosine, lr_factor, one_cycle


def test_constant_with_warmup():
    assert [constant(s, 100, 4) for s in (0, 1, 3, 4, 99)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert constant(0, 100, 0) == 1.0


def test_cosine_with_warmup_reaches_zero_at_the_last_step():
    total, warmup = 110, 10
    assert cosine(0, total, warmup) == pytest.approx(0.1)
    assert cosine(9, total, warmup) == pytest.approx(1.0)
    assert cosine(10, total, warmup) == pytest.approx(1.0)
    mid = 10 + (total - warmup - 1) / 2
    assert cosine(int(mid), total, warmup) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * (int(mid) - 10) / 99))
    )
    assert cosine(total - 1, total, warmup) == pytest.approx(0.0, abs=1e-12)


def test_one_cycle_rises_then_anneals():
    total = 100  # rise over 30 steps when warmup is 0
    assert one_cycle(0, total, 0) == pytest.approx(ONE_CYCLE_START)
    assert one_cycle(15, total, 0) == pytest.approx(ONE_CYCLE_START + (1 - ONE_CYCLE_START) / 2)
    assert one_cycle(30, total, 0) == pytest.approx(1.0)
    assert one_cycle(99, total, 0) == pytest.approx(0.0, abs=1e-12)
    values = [one_cycle(s, total, 0) for s in range(total)]
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 30


def test_unknown_schedule():
    from difflab.core.errors import ConfigError

    with pytest.raises(ConfigError, match="lr_schedule"):
        lr_factor("linear", 0, 10, 0)
