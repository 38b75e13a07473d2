from lowrank.speed import layer_seconds, median_seconds, time_break_even


def test_time_break_even_is_the_last_rank_before_the_first_loss():
    ranks = [10, 50, 100, 200, 400]
    assert (
        time_break_even(ranks, 1.0, [0.1, 0.3, 0.8, 1.2, 0.9]) == 100
    )  # 400 is faster again, but not contiguous
    assert time_break_even(ranks, 1.0, [1.5] * 5) is None
    assert time_break_even(ranks, 1.0, [0.5] * 5) == 400


def test_median_seconds_calls_warmup_plus_repeats():
    calls = []
    assert median_seconds(lambda: calls.append(1), repeats=5, warmup=2) >= 0
    assert len(calls) == 7


def test_layer_seconds_times_dense_and_factorised_layers():
    assert layer_seconds(20, 30, None, batch=4, repeats=3) > 0
    assert layer_seconds(20, 30, 5, batch=4, repeats=3) > 0
