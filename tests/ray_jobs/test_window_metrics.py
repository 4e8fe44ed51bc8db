"""Windowed NE and calibration (`ray_jobs.training.window_metrics`) against sklearn and numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from modules.model import StepOutput
from ray_jobs.training.window_metrics import WindowMetrics

TASKS = ["click", "like"]


def _steps(n: int, rows: int = 64, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """n steps of (probabilities [B, T], labels [B, T], weight [B]); base rates differ by task and
    step, and the last rows of each step are padding (weight 0) with labels/predictions that would
    change every figure if they counted."""
    rng = np.random.default_rng(seed)
    steps = []
    for i in range(n):
        rate = np.array([0.1 + 0.05 * i, 0.4])
        labels = (rng.random((rows, 2)) < rate).astype(np.float32)
        preds = np.clip(0.6 * labels + 0.4 * rng.random((rows, 2)), 1e-3, 1 - 1e-3).astype(np.float32)
        weight = np.ones(rows, np.float32)
        weight[-5:] = 0.0
        labels[-5:], preds[-5:] = 1.0, 0.001
        steps.append((preds, labels, weight))
    return steps


def _reference(steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, list[float]]:
    """NE = sklearn log loss / entropy of the weighted base rate; calibration = sum p / sum y."""
    preds, labels, weight = (np.concatenate(parts) for parts in zip(*steps))
    keep = weight > 0
    out: dict[str, list[float]] = {"ne": [], "calibration": [], "loss": []}
    for t in range(labels.shape[1]):
        p, y = preds[keep, t].astype(np.float64), labels[keep, t]
        loss = log_loss(y, p, labels=[0, 1])
        rate = y.mean()
        entropy = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
        out["ne"].append(loss / entropy)
        out["calibration"].append(p.sum() / y.sum())
        out["loss"].append(loss)
    return out


def _assert_close(got: dict[str, list[float]], want: dict[str, list[float]]) -> None:
    for name in ("ne", "calibration", "loss"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, err_msg=name)


def test_window_equals_sklearn_and_numpy_over_the_last_n_steps_across_the_boundary():
    window, steps = WindowMetrics(TASKS, window=3), _steps(5)
    assert window.compute() == {} and window.format() == ""
    for i, (p, y, w) in enumerate(steps, start=1):
        window.update_tensors(torch.from_numpy(p), torch.from_numpy(y), torch.from_numpy(w))
        _assert_close(window.compute(), _reference(steps[max(0, i - 3): i]))  # filling, full, then sliding
        assert window.steps == min(i, 3)
    # the boundary: the oldest step left the window (its figures differ from the window's)
    assert not np.allclose(window.compute()["ne"], _reference(steps[1:5])["ne"])


def test_step_output_logits_give_the_same_figures_and_flat_keys():
    (p, y, w), = _steps(1)
    window = WindowMetrics(TASKS, window=2)
    logits = torch.logit(torch.from_numpy(p).double()).float()
    window.update(StepOutput(logits, torch.zeros(2), torch.zeros(()), labels=torch.from_numpy(y),
                             weight=torch.from_numpy(w)))
    want = _reference([(p, y, w)])
    flat = window.as_metrics()
    assert sorted(flat) == ["train_window_calibration/click", "train_window_calibration/like",
                            "train_window_ne/click", "train_window_ne/like"]
    np.testing.assert_allclose([flat["train_window_ne/click"], flat["train_window_calibration/like"]],
                               [want["ne"][0], want["calibration"][1]], rtol=1e-5)
    assert window.format().startswith("NE ") and " cal " in window.format()


def test_a_resumed_window_continues_the_uninterrupted_one():
    """`state()` goes into a checkpoint's progress JSON; `load` of it gives the same next figures."""
    import json

    steps = _steps(5)
    uninterrupted, resumed = WindowMetrics(TASKS, window=3), WindowMetrics(TASKS, window=3)
    tensors = [tuple(torch.from_numpy(a) for a in step) for step in steps]
    for step in tensors[:4]:
        uninterrupted.update_tensors(*step)
    resumed.load(json.loads(json.dumps(uninterrupted.state())))
    for window in (uninterrupted, resumed):
        window.update_tensors(*tensors[4])
    assert resumed.compute() == uninterrupted.compute()
    other = WindowMetrics(TASKS, window=2)  # another train.log_every: the old ring does not fit
    other.load(uninterrupted.state())
    assert other.steps == 0 and other.compute() == {}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="window must be >= 1"):
        WindowMetrics(TASKS, window=0)
    with pytest.raises(ValueError, match="3 tasks, expected 2"):
        WindowMetrics(TASKS, window=2).update_tensors(torch.rand(4, 3), torch.ones(4, 3), torch.ones(4))
    with pytest.raises(ValueError, match="without labels/weight"):
        WindowMetrics(TASKS, window=2).update(StepOutput(torch.zeros(4, 2), torch.zeros(2), torch.zeros(())))


def test_a_window_longer_than_the_run_holds_and_checkpoints_only_the_steps_it_saw():
    """`train.log_every` 10**6 (progress lines off) makes a 10**6-step window: its checkpoint
    state must be the steps seen (it was a 10**6-row ring, 20-25 s of JSON per checkpoint), and
    its figures those of every step so far, as a short window's over the same steps."""
    steps = [tuple(torch.from_numpy(a) for a in step) for step in _steps(4)]
    long, short = WindowMetrics(TASKS, window=10**6), WindowMetrics(TASKS, window=4)
    for step in steps:
        long.update_tensors(*step)
        short.update_tensors(*step)
    state = long.state()
    assert len(state["rows"]) == 4 and long.steps == 4
    _assert_close(long.compute(), _reference(_steps(4)))
    assert long.compute() == short.compute()


def test_states_and_figures_equal_torchrec_metrics_functions():
    """The restated definitions (`step_states`, `window_figures`) against torchrec.metrics' own,
    on extreme predictions (0 and 1, clamped by eta), padding rows and a task with no positive."""
    from torchrec.metrics.calibration import compute_calibration, get_calibration_states
    from torchrec.metrics.ne import compute_ne, get_ne_states

    from ray_jobs.training.window_metrics import ETA, step_states, window_figures

    generator = torch.Generator().manual_seed(0)
    preds = torch.rand(3, 200, generator=generator)
    preds[0, :10], preds[1, :10] = 0.0, 1.0
    labels = (torch.rand(3, 200, generator=generator) < 0.3).double()
    labels[2] = 0.0  # no positive: calibration 0, NE of a zero base rate
    weights = torch.ones(3, 200, dtype=torch.float64)
    weights[:, -20:] = 0.0
    ne = get_ne_states(labels, preds.clone(), weights, ETA)
    expected = torch.stack([ne["cross_entropy_sum"], ne["weighted_num_samples"], ne["pos_labels"], ne["neg_labels"],
                            get_calibration_states(labels, preds.double(), weights)["calibration_num"]])
    states = step_states(preds, labels, weights)
    torch.testing.assert_close(states, expected)
    figures = window_figures(states)
    torch.testing.assert_close(figures["ne"], compute_ne(*expected[:4], ETA))
    torch.testing.assert_close(figures["calibration"], compute_calibration(expected[4], expected[2]))
